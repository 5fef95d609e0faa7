"""The progress store: which exercises a learner started and passed, and every attempt.

SQLite in bb's home directory. Every write is one transaction, so an interrupted bb leaves
the store as it was before or after a write, never between.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bb import paths
from bb.errors import EnvironmentProblem
from bb.report import GradeReport

SCHEMA_VERSION = 1

#: Free space a grade's record needs, with room to spare (a write-ahead log frame is 4 KiB).
_MIN_FREE_BYTES = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exercises (
    course      TEXT NOT NULL,
    exercise    TEXT NOT NULL,
    workspace   TEXT,
    started_at  REAL NOT NULL,
    passed_at   REAL,
    PRIMARY KEY (course, exercise)
);
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY,
    course      TEXT NOT NULL,
    exercise    TEXT NOT NULL,
    at          REAL NOT NULL,
    passed      INTEGER NOT NULL,
    checks_passed INTEGER NOT NULL,
    checks_total  INTEGER NOT NULL,
    duration    REAL NOT NULL
);
"""


@dataclasses.dataclass(frozen=True)
class ExerciseProgress:
    exercise: str
    workspace: Path | None
    started_at: float
    passed_at: float | None
    attempts: int

    @property
    def status(self) -> str:
        return "passed" if self.passed_at is not None else "started"


@contextmanager
def _connect(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    path = path or paths.progress_db()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=10)
    except OSError as exc:
        raise _os_problem(path, exc) from None
    except sqlite3.Error as exc:
        raise _store_problem(path, exc) from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise EnvironmentProblem(
                f"The progress store at {path} was written by a newer bb.",
                hint="Upgrade bb (`pip install -U bb`), or point BB_HOME elsewhere.",
            )
        yield conn
    except sqlite3.Error as exc:
        raise _store_problem(path, exc) from None
    finally:
        conn.close()


def check_usable() -> None:
    """Make sure a grade could be recorded now, before one is spent: the store opens, reads
    whole, takes a write, and its disk has room.

    Raises:
        EnvironmentProblem: naming the real cause (permissions, a full disk, damage, a lock).
    """
    path = paths.progress_db()
    with _connect(path) as conn:
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise _damaged(path, str(check[0] if check else "no answer"))
        # A write that changes nothing still needs the write lock and a writable file.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM attempts WHERE 0")
        conn.rollback()
    free = shutil.disk_usage(path.parent).free
    if free < _MIN_FREE_BYTES:
        raise _full(path)


def _damaged(path: Path, detail: str) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"bb's progress store at {path} is damaged ({detail}).",
        hint="Move the file aside to start afresh; bb will create a new one.",
    )


def _full(path: Path) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"The disk holding bb's progress store ({path.parent}) is full.",
        hint="Free some space on that disk, or point BB_HOME at another one.",
    )


def _not_writable(path: Path, detail: str) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"bb cannot write its progress store at {path} ({detail}).",
        hint=f"Make {path.parent} and the files in it writable by you (check their owner and "
        "permissions, and that the disk is not mounted read-only), or point BB_HOME elsewhere.",
    )


_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def _os_problem(path: Path, exc: OSError) -> EnvironmentProblem:
    if exc.errno in _PERMISSION:
        return _not_writable(path, exc.strerror or str(exc))
    if exc.errno in _NO_SPACE:
        return _full(path)
    return EnvironmentProblem(
        f"bb cannot open its progress store at {path} ({exc.strerror or exc}).",
        hint="Check that BB_HOME names a directory on a working disk.",
    )


def _store_problem(path: Path, exc: sqlite3.Error) -> EnvironmentProblem:
    """Say what is really wrong with the store: SQLite's error code, and for the codes that
    hide an operating-system cause (cannot open, read-only, I/O), a probe of the disk."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return _damaged(path, str(exc))
    if name.startswith("SQLITE_FULL"):
        return _full(path)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return EnvironmentProblem(
            f"bb's progress store at {path} is locked by another program ({exc}).",
            hint="Wait for the other bb command to finish, then try again.",
        )
    cause = _probe_disk(path)
    if cause is not None:
        return _os_problem(path, cause)
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
        return _not_writable(path, str(exc))
    if path.is_dir():
        return _damaged(path, "it is a directory, not a file")
    return EnvironmentProblem(
        f"bb cannot use its progress store at {path} ({exc}).",
        hint="Check the disk holding it; if the file itself is damaged, move it aside and bb "
        "will create a new one.",
    )


def _probe_disk(path: Path) -> OSError | None:
    """The operating system's own answer to writing beside the store and to the store."""
    try:
        with tempfile.TemporaryFile(dir=path.parent) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
        if path.is_file():
            with path.open("r+b"):
                pass
    except OSError as exc:
        return exc
    return None


def record_start(course: str, exercise: str, workspace: Path) -> None:
    with _connect() as conn, conn:
        conn.execute(
            "INSERT INTO exercises (course, exercise, workspace, started_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (course, exercise) DO UPDATE SET workspace = excluded.workspace",
            (course, exercise, str(workspace), time.time()),
        )


def record_attempt(course: str, report: GradeReport) -> None:
    now = time.time()
    with _connect() as conn, conn:
        conn.execute(
            "INSERT INTO attempts (course, exercise, at, passed, checks_passed, checks_total, "
            "duration) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                course,
                report.exercise,
                now,
                int(report.passed),
                sum(1 for c in report.checks if c.status.value == "passed"),
                len(report.checks),
                report.duration,
            ),
        )
        conn.execute(
            "INSERT INTO exercises (course, exercise, started_at) VALUES (?, ?, ?) "
            "ON CONFLICT (course, exercise) DO NOTHING",
            (course, report.exercise, now),
        )
        if report.passed:
            conn.execute(
                "UPDATE exercises SET passed_at = COALESCE(passed_at, ?) "
                "WHERE course = ? AND exercise = ?",
                (now, course, report.exercise),
            )


def load(course: str) -> dict[str, ExerciseProgress]:
    """Progress on every exercise of ``course`` that was ever started or graded."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT e.exercise, e.workspace, e.started_at, e.passed_at, "
            "(SELECT COUNT(*) FROM attempts a WHERE a.course = e.course "
            " AND a.exercise = e.exercise) FROM exercises e WHERE e.course = ?",
            (course,),
        ).fetchall()
    return {
        row[0]: ExerciseProgress(
            exercise=row[0],
            workspace=Path(row[1]) if row[1] else None,
            started_at=row[2],
            passed_at=row[3],
            attempts=row[4],
        )
        for row in rows
    }
