"""The progress store: SQLite under BB_HOME, never left half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bb import paths, progress
from bb.errors import EnvironmentProblem
from bb.report import CheckResult, GradeReport, Status


def _report(passed: bool) -> GradeReport:
    status = Status.PASSED if passed else Status.FAILED
    return GradeReport(
        exercise="rest-crud",
        title="t",
        duration=2.0,
        timings={},
        checks=(CheckResult(name="a", description="a", status=status),),
    )


def test_lives_under_bb_home(isolated_home: Path) -> None:
    progress.record_start("core", "rest-crud", Path("/tmp/ws"))
    assert paths.progress_db() == isolated_home / "progress.sqlite3"
    assert paths.progress_db().is_file()


def test_start_attempts_and_pass() -> None:
    progress.record_start("core", "rest-crud", Path("/tmp/ws"))
    progress.record_attempt("core", _report(passed=False))
    state = progress.load("core")["rest-crud"]
    assert (state.status, state.attempts, state.workspace) == ("started", 1, Path("/tmp/ws"))
    progress.record_attempt("core", _report(passed=True))
    progress.record_attempt("core", _report(passed=False))  # a later failure keeps the pass
    state = progress.load("core")["rest-crud"]
    assert (state.status, state.attempts) == ("passed", 3)
    assert progress.load("other") == {}


def test_a_damaged_store_is_reported_not_overwritten(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    paths.progress_db().write_bytes(b"this is not a database" * 100)
    with pytest.raises(EnvironmentProblem, match="cannot be read"):
        progress.load("core")
    assert paths.progress_db().read_bytes() == b"this is not a database" * 100


def test_a_newer_store_is_refused(isolated_home: Path) -> None:
    import sqlite3

    isolated_home.mkdir(parents=True)
    with sqlite3.connect(paths.progress_db()) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(EnvironmentProblem, match="newer bb"):
        progress.load("core")
