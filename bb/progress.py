"""The progress store: which exercises a learner started and passed, and every attempt.

SQLite in bb's home directory. Every write is one transaction, so an interrupted bb leaves
the store as it was before or after a write, never between.

Progress belongs to a pack as bb knows it (:class:`bb.pack.manifest.PackIdentity`): by where
it lives (``builtin`` for the built-in course wherever bb is installed, else the pack's resolved
directory), never by the id its course declares, so no other pack can pass an exercise of the
built-in course. Each attempt is stamped with the digest of the pack's content it ran against.

A pass is kept when the pack's content changes later (a fixed typo, a new bb release): the
exercise stays passed, and the store keeps the digest it passed on (``passed_digest``), which
``bb status`` shows beside the pack's current one when they differ.
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
from typing import TYPE_CHECKING

from bb import paths
from bb.errors import EnvironmentProblem
from bb.results.report import GradeReport

if TYPE_CHECKING:
    from bb.pack.manifest import PackIdentity

SCHEMA_VERSION = 2

#: Free space a grade's record needs, with room to spare (a write-ahead log frame is 4 KiB).
_MIN_FREE_BYTES = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exercises (
    pack        TEXT NOT NULL,      -- 'builtin', or the pack's resolved directory
    exercise    TEXT NOT NULL,
    workspace   TEXT,
    started_at  REAL NOT NULL,
    passed_at   REAL,
    passed_digest TEXT,             -- the pack's content digest at the first pass
    PRIMARY KEY (pack, exercise)
);
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY,
    pack        TEXT NOT NULL,
    pack_digest TEXT,               -- NULL only for attempts migrated from schema 1
    exercise    TEXT NOT NULL,
    at          REAL NOT NULL,
    passed      INTEGER NOT NULL,
    checks_passed INTEGER NOT NULL,
    checks_total  INTEGER NOT NULL,
    duration    REAL NOT NULL
);
"""

#: Schema 1 keyed progress by the course id a pack declares. Its rows are moved to the pack
#: their project's record names, when the project is still there to say; otherwise a
#: ``core`` row goes to the built-in course (the only ``core`` a learner was meant to have),
#: and any other to ``unknown:<course id>``, which no pack is: kept, but never shown.
_UNKNOWN = "unknown:"


@dataclasses.dataclass(frozen=True)
class ExerciseProgress:
    exercise: str
    workspace: Path | None
    started_at: float
    passed_at: float | None
    attempts: int
    #: The pack's content digest when it first passed (None if it passed before bb kept it).
    passed_digest: str | None = None

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
        if version > SCHEMA_VERSION:
            raise EnvironmentProblem(
                f"The progress store at {path} was written by a newer bb.",
                hint="Upgrade bb (`pip install -U bb`), or point BB_HOME elsewhere.",
            )
        if version < SCHEMA_VERSION:
            _upgrade(conn)
        yield conn
    except sqlite3.Error as exc:
        raise _store_problem(path, exc) from None
    finally:
        conn.close()


def _upgrade(conn: sqlite3.Connection) -> None:
    """Create or migrate the schema in one transaction (another bb may race to do it too)."""
    isolation = conn.isolation_level
    conn.isolation_level = None  # explicit BEGIN/COMMIT: DDL and data move in one transaction
    try:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 1:
            _migrate_from_1(conn)
        elif version == 0:
            _create_tables(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.isolation_level = isolation


def _create_tables(conn: sqlite3.Connection) -> None:
    # Not executescript: it would commit the transaction this runs in.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_from_1(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE exercises RENAME TO exercises_v1")
    conn.execute("ALTER TABLE attempts RENAME TO attempts_v1")
    _create_tables(conn)
    placed: dict[tuple[str, str], str] = {}
    for course, exercise, workspace, started_at, passed_at in conn.execute(
        "SELECT course, exercise, workspace, started_at, passed_at FROM exercises_v1"
    ).fetchall():
        pack = _pack_of_v1_row(course, workspace)
        placed[(course, exercise)] = pack
        conn.execute(
            "INSERT INTO exercises (pack, exercise, workspace, started_at, passed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (pack, exercise) DO UPDATE SET "
            "started_at = MIN(started_at, excluded.started_at), "
            "passed_at = COALESCE(MIN(passed_at, excluded.passed_at), passed_at, "
            "excluded.passed_at)",
            (pack, exercise, workspace, started_at, passed_at),
        )
    for row in conn.execute(
        "SELECT course, exercise, at, passed, checks_passed, checks_total, duration "
        "FROM attempts_v1 ORDER BY id"
    ).fetchall():
        course, exercise = row[0], row[1]
        pack = placed.get((course, exercise)) or _pack_of_v1_row(course, None)
        conn.execute(
            "INSERT INTO attempts (pack, pack_digest, exercise, at, passed, checks_passed, "
            "checks_total, duration) VALUES (?, NULL, ?, ?, ?, ?, ?, ?)",
            (pack, exercise, *row[2:]),
        )
    conn.execute("DROP TABLE exercises_v1")
    conn.execute("DROP TABLE attempts_v1")


def _pack_of_v1_row(course: str, workspace: str | None) -> str:
    from bb.pack.manifest import BUILTIN

    if workspace:
        recorded = _recorded_pack(Path(workspace))
        if recorded is not None:
            return recorded
    return BUILTIN if course == "core" else f"{_UNKNOWN}{course}"


def _recorded_pack(workspace: Path) -> str | None:
    """The pack a project's record names, as progress keys it; None if it cannot say."""
    from bb.errors import UserError
    from bb.pack.manifest import location_key
    from bb.pack.scaffold import read_record

    try:
        return location_key(read_record(workspace).pack)
    except (UserError, OSError, RuntimeError):
        return None


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


def record_start(pack: PackIdentity, exercise: str, workspace: Path) -> None:
    with _connect() as conn, conn:
        conn.execute(
            "INSERT INTO exercises (pack, exercise, workspace, started_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (pack, exercise) DO UPDATE SET workspace = excluded.workspace",
            (pack.where, exercise, str(workspace), time.time()),
        )


def record_attempt(pack: PackIdentity, report: GradeReport) -> None:
    now = time.time()
    with _connect() as conn, conn:
        conn.execute(
            "INSERT INTO attempts (pack, pack_digest, exercise, at, passed, checks_passed, "
            "checks_total, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pack.where,
                pack.digest,
                report.exercise,
                now,
                int(report.passed),
                sum(1 for c in report.checks if c.status.value == "passed"),
                len(report.checks),
                report.duration,
            ),
        )
        conn.execute(
            "INSERT INTO exercises (pack, exercise, started_at) VALUES (?, ?, ?) "
            "ON CONFLICT (pack, exercise) DO NOTHING",
            (pack.where, report.exercise, now),
        )
        if report.passed:
            conn.execute(
                "UPDATE exercises SET passed_at = ?, passed_digest = ? "
                "WHERE pack = ? AND exercise = ? AND passed_at IS NULL",
                (now, pack.digest, pack.where, report.exercise),
            )


def load(pack: PackIdentity) -> dict[str, ExerciseProgress]:
    """Progress on every exercise of ``pack`` that was ever started or graded."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT e.exercise, e.workspace, e.started_at, e.passed_at, e.passed_digest, "
            "(SELECT COUNT(*) FROM attempts a WHERE a.pack = e.pack "
            " AND a.exercise = e.exercise) FROM exercises e WHERE e.pack = ?",
            (pack.where,),
        ).fetchall()
    return {
        row[0]: ExerciseProgress(
            exercise=row[0],
            workspace=Path(row[1]) if row[1] else None,
            started_at=row[2],
            passed_at=row[3],
            passed_digest=row[4],
            attempts=row[5],
        )
        for row in rows
    }
