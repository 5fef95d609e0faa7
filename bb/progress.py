"""The progress store: which exercises a learner started and passed, and every attempt.

SQLite in bb's home directory. Every write is one transaction, so an interrupted bb leaves
the store as it was before or after a write, never between.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bb import paths
from bb.errors import EnvironmentProblem
from bb.report import GradeReport

SCHEMA_VERSION = 1

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
    except (OSError, sqlite3.Error) as exc:
        raise EnvironmentProblem(
            f"bb cannot open its progress store at {path} ({exc}).",
            hint="Check that the directory is writable, or point BB_HOME somewhere that is.",
        ) from None
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
    except sqlite3.DatabaseError as exc:
        raise EnvironmentProblem(
            f"bb's progress store at {path} cannot be read ({exc}).",
            hint="Move the file aside to start afresh; bb will create a new one.",
        ) from None
    finally:
        conn.close()


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
