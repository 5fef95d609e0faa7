"""A journal of grades in flight, so any bb command can notice what a killed grade left behind.

Cheap on purpose (no Docker import): each grade writes a file named after its id, holding its
owner (process id and start time), and removes it once it has torn everything down. A file
whose process is gone marks leftovers; so does a file that is empty or unreadable (a disk that
filled up while it was written), since no live grade ever leaves one so.

A grade's scratch directory (``bb-grade-*`` in the temporary directory) holds an owner file
too, so the same rule removes the scratch of a grade that was killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path

from bb import paths
from bb.errors import EnvironmentProblem

#: The prefix of grades' scratch directories in the temporary directory.
SCRATCH_PREFIX = "bb-grade-"
#: Inside a scratch directory: who owns it.
OWNER_FILE = "owner"
#: A file being written is renamed into place; one left half-written is stale after this.
_GRACE_SECONDS = 60.0


def _directory() -> Path:
    return paths.home() / "grades-in-flight"


def owner_token(pid: int | None = None) -> str:
    """``pid start-time``: the start time tells a process from a later one given the same pid."""
    pid = os.getpid() if pid is None else pid
    return f"{pid} {_start_time(pid) or ''}".strip()


def owner_alive(token: str) -> bool:
    """Whether the process a token names still runs. A malformed token names nobody."""
    fields = token.split()
    if not fields or not fields[0].isdigit() or int(fields[0]) <= 0:
        return False  # os.kill(0, 0) would ask about our own process group, and succeed
    pid = int(fields[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    except OSError:
        return False
    if len(fields) > 1:
        started = _start_time(pid)
        if started is not None and started != fields[1]:
            return False  # the pid was reused by a later process
    return True


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux); None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that readers see the whole file or none (never an empty one).

    Raises:
        EnvironmentProblem: the disk is full or not writable.
    """
    staged = path.with_name(f".{path.name}.partial")
    try:
        staged.write_text(text, encoding="utf-8")
        staged.rename(path)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise _disk_problem(path.parent, exc) from None


def _disk_problem(directory: Path, exc: OSError) -> EnvironmentProblem:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EnvironmentProblem(
            f"The disk holding {directory} is full.",
            hint="Free some space on it (or point BB_HOME or TMPDIR at another disk).",
        )
    return EnvironmentProblem(
        f"bb cannot write in {directory} ({exc.strerror or exc}).",
        hint="Make it writable by you, or point BB_HOME (or TMPDIR) somewhere that is.",
    )


def open_entry(grade_id: str) -> Path:
    """Record that a grade is in flight.

    Raises:
        EnvironmentProblem: bb's home is not writable or its disk is full.
    """
    directory = _directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_problem(directory, exc) from None
    entry = directory / grade_id
    _write_atomically(entry, owner_token())
    return entry


def stale_entries() -> list[Path]:
    """Entries whose grading process no longer runs, and any that cannot be read."""
    directory = _directory()
    if not directory.is_dir():
        return []
    stale = []
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            if _older_than_grace(entry):
                stale.append(entry)  # a half-written entry, left by a full disk or a kill
            continue
        try:
            token = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            token = ""
        if not owner_alive(token):
            stale.append(entry)
    return stale


def new_scratch() -> Path:
    """A scratch directory for one grade, marked as this process's.

    Raises:
        EnvironmentProblem: the temporary directory is not writable or its disk is full.
    """
    try:
        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    except OSError as exc:
        raise _disk_problem(Path(tempfile.gettempdir()), exc) from None
    try:
        _write_atomically(scratch / OWNER_FILE, owner_token())
    except EnvironmentProblem:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch


def sweep_scratch() -> int:
    """Remove the scratch directories of grades whose process is gone; return how many.

    Only this user's directories that hold an owner file are considered: the owner file is
    written whole or not at all, and a directory without one may belong to a bb that does not
    write it (or to a grade writing it right now).
    """
    removed = 0
    root = Path(tempfile.gettempdir())
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(SCRATCH_PREFIX)]
    except OSError:
        return 0
    uid = os.getuid() if hasattr(os, "getuid") else None
    for scratch in candidates:
        try:
            info = scratch.lstat()
        except OSError:
            continue
        if not scratch.is_dir() or scratch.is_symlink():
            continue
        if uid is not None and info.st_uid != uid:
            continue
        try:
            token = (scratch / OWNER_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if owner_alive(token):
            continue
        shutil.rmtree(scratch, ignore_errors=True)
        removed += 1
    return removed


def _older_than_grace(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return time.time() - path.lstat().st_mtime > _GRACE_SECONDS
    return False
