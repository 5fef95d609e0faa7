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

Hints escalate per check: the store keeps, per exercise and check, how many levels of its hint
the learner has seen and the levels its last failure offered (:class:`RevealedHint`), so
``bb hint`` shows them without running anything. A partial grade (``bb grade -k``) is kept as
an attempt with its pattern, and never as a pass.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bb import paths
from bb.errors import EnvironmentProblem, UserError
from bb.results.report import GradeReport

if TYPE_CHECKING:
    from bb.pack.manifest import PackIdentity

SCHEMA_VERSION = 3

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
    duration    REAL NOT NULL,
    selection   TEXT                -- a partial grade's -k pattern (NULL: a whole grade)
);
CREATE TABLE IF NOT EXISTS hints (
    pack        TEXT NOT NULL,
    exercise    TEXT NOT NULL,
    check_name  TEXT NOT NULL,
    description TEXT NOT NULL,
    level       INTEGER NOT NULL,   -- how many levels the learner has seen, from 1
    levels      TEXT NOT NULL,      -- JSON list: every level the check's last failure offered
    revealed_at REAL NOT NULL,
    PRIMARY KEY (pack, exercise, check_name)
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


@dataclasses.dataclass(frozen=True)
class RevealedHint:
    """How much of one check's hint the learner has seen."""

    check: str
    description: str
    #: How many levels have been shown, from 1.
    level: int
    #: Every level the check's last failure offered, shortest first.
    levels: tuple[str, ...]

    @property
    def seen(self) -> tuple[str, ...]:
        return self.levels[: self.level]

    @property
    def more(self) -> bool:
        return self.level < len(self.levels)


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
            _migrate_from_1(conn)  # straight to the current tables
        elif version == 2:
            _migrate_from_2(conn)
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


def _migrate_from_2(conn: sqlite3.Connection) -> None:
    """Schema 3 only adds: the pattern of a partial grade (NULL: every attempt before was
    whole), and the hints revealed (none yet)."""
    conn.execute("ALTER TABLE attempts ADD COLUMN selection TEXT")
    _create_tables(conn)  # the hints table; the others exist already


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


def record_attempt(
    pack: PackIdentity, report: GradeReport, *, hints: Sequence[RevealedHint] = ()
) -> None:
    """Keep a grade: the attempt, a first pass (never from a partial grade), and the hint
    levels it showed (``hints``, from :func:`bb.hints.escalate`), in one transaction."""
    now = time.time()
    partial = report.selection is not None
    with _connect() as conn, conn:
        conn.execute(
            "INSERT INTO attempts (pack, pack_digest, exercise, at, passed, checks_passed, "
            "checks_total, duration, selection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pack.where,
                pack.digest,
                report.exercise,
                now,
                int(report.passed and not partial),
                sum(1 for c in report.checks if c.status.value == "passed"),
                len(report.checks),
                report.duration,
                report.selection.pattern if report.selection is not None else None,
            ),
        )
        for shown in hints:
            _keep_hint(conn, pack, report.exercise, shown, now)
        conn.execute(
            "INSERT INTO exercises (pack, exercise, started_at) VALUES (?, ?, ?) "
            "ON CONFLICT (pack, exercise) DO NOTHING",
            (pack.where, report.exercise, now),
        )
        if report.passed and not partial:
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


def _keep_hint(
    conn: sqlite3.Connection, pack: PackIdentity, exercise: str, shown: RevealedHint, now: float
) -> None:
    conn.execute(
        "INSERT INTO hints (pack, exercise, check_name, description, level, levels, "
        "revealed_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pack, exercise, check_name) "
        "DO UPDATE SET description = excluded.description, level = excluded.level, "
        "levels = excluded.levels, revealed_at = excluded.revealed_at",
        (pack.where, exercise, shown.check, shown.description, shown.level,
         json.dumps(list(shown.levels)), now),
    )  # fmt: skip


def _hint_from_row(row: tuple[str, str, int, str]) -> RevealedHint:
    try:
        levels = tuple(str(level) for level in json.loads(row[3]))
    except (ValueError, TypeError):
        levels = ()
    return RevealedHint(row[0], row[1], max(1, min(int(row[2]), len(levels))), levels)


def revealed_hints(pack: PackIdentity, exercise: str) -> dict[str, RevealedHint]:
    """What the learner has seen of each check's hint in ``exercise``, by check name (in the
    order the checks first failed)."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT check_name, description, level, levels FROM hints "
            "WHERE pack = ? AND exercise = ? ORDER BY rowid",
            (pack.where, exercise),
        ).fetchall()
    found = (_hint_from_row(row) for row in rows)
    return {hint.check: hint for hint in found if hint.levels}


def reveal_next_hint(pack: PackIdentity, exercise: str, check: str) -> tuple[RevealedHint, bool]:
    """Show one more level of ``check``'s hint; returns the hint and whether there was a
    level left to show.

    Raises:
        UserError: no grade has shown a hint for ``check`` yet.
    """
    name = check.removeprefix("test_")
    known = revealed_hints(pack, exercise)
    if name not in known:
        failed = ", ".join(known) or "none yet"
        raise UserError(
            f"bb has shown no hint for a check called {check!r} in {exercise}.",
            hint=f"A check's hints start when it fails in `bb grade`. Checks with hints so far: "
            f"{failed}.",
        )
    before = known[name]
    if not before.more:
        return before, False
    after = dataclasses.replace(before, level=before.level + 1)
    with _connect() as conn, conn:
        conn.execute(
            "UPDATE hints SET level = ?, revealed_at = ? WHERE pack = ? AND exercise = ? "
            "AND check_name = ?",
            (after.level, time.time(), pack.where, exercise, name),
        )
    return after, True
