"""Watching a project for saves: which changes count, and when inotify cannot be trusted.

`bb watch` regrades on every save. Changes under bb's own record (``.bb/``), version control,
caches and editors' swap files do not count. Where the kernel does not report changes
(Windows drives under WSL, network and FUSE mounts), the files are polled instead.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

#: File systems on which inotify misses changes made by another machine or the Windows host.
_POLLED_FILESYSTEMS = frozenset(
    {"9p", "drvfs", "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "virtiofs", "vboxsf"}
)
#: Directories whose changes never mean the learner saved their project.
_IGNORED_DIRS = frozenset({".bb", ".git", "__pycache__", ".pytest_cache", ".mypy_cache",
                           ".ruff_cache", ".venv", "venv", "node_modules", ".idea"})  # fmt: skip


def filesystem_of(path: Path) -> str:
    """The type of the file system ``path`` lives on, from /proc/mounts ("" if unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    target = str(path.resolve())
    best, kind = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


def needs_polling(path: Path) -> bool:
    return filesystem_of(path) in _POLLED_FILESYSTEMS


def counts(path: str, workspace: Path) -> bool:
    """Whether a change at ``path`` is a save of the learner's project."""
    try:
        parts = Path(path).resolve().relative_to(workspace.resolve()).parts
    except ValueError:
        return False
    if not parts or any(part in _IGNORED_DIRS for part in parts[:-1]):
        return False
    name = parts[-1]
    return not (
        name in _IGNORED_DIRS
        or name.endswith((".pyc", ".pyo", ".swp", ".swx", "~"))
        or name.startswith(".#")
        or name == "4913"  # vim's probe file
    )


class Saves:
    """The saves of a project, collected from the moment this is made (a save during a grade
    is not lost: the next :meth:`wait` returns it at once).

    Args:
        poll: poll instead of inotify; by default, only where inotify cannot be trusted.
    """

    def __init__(self, workspace: Path, *, poll: bool | None = None) -> None:
        self.workspace = workspace
        self.polling = needs_polling(workspace) if poll is None else poll
        self._batches: queue.Queue[set[Path]] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="bb-watch")
        self._thread.start()
        self._ready.wait(timeout=5)

    def _watch(self) -> None:
        import watchfiles

        self._ready.set()
        for batch in watchfiles.watch(
            self.workspace,
            watch_filter=lambda _change, path: counts(path, self.workspace),
            # A save is often several writes (a temp file, a rename): wait for quiet first.
            step=150,
            debounce=1600,
            force_polling=self.polling,
            poll_delay_ms=300,
            stop_event=self._stop,
            raise_interrupt=False,
        ):
            self._batches.put({Path(path) for _, path in batch})

    def wait(self) -> set[Path]:
        """Block until the next save; return every file saved since the last call."""
        changed = set(self._batches.get())
        while True:
            try:
                changed |= self._batches.get_nowait()
            except queue.Empty:
                return changed

    def close(self) -> None:
        self._stop.set()
