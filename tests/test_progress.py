"""The progress store: SQLite under BB_HOME, never left half-written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bb import paths, progress
from bb.errors import EnvironmentProblem
from bb.report import CheckResult, GradeReport, Status
from tests.helpers import fill_disk, read_only, small_disk


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
    with pytest.raises(EnvironmentProblem, match="is damaged") as raised:
        progress.load("core")
    assert "Move the file aside" in (raised.value.hint or "")
    assert paths.progress_db().read_bytes() == b"this is not a database" * 100
    with pytest.raises(EnvironmentProblem, match="is damaged"):
        progress.check_usable()


def test_a_read_only_store_names_permissions_not_damage(isolated_home: Path) -> None:
    progress.record_start("core", "rest-crud", Path("/tmp/ws"))
    with read_only(paths.progress_db(), isolated_home):
        with pytest.raises(EnvironmentProblem, match="cannot write") as raised:
            progress.load("core")
        assert "writable" in (raised.value.hint or "")
        assert "aside" not in (raised.value.hint or "")
        with pytest.raises(EnvironmentProblem, match="cannot write"):
            progress.check_usable()


def test_a_full_disk_is_named_before_a_grade_is_spent(tmp_path: Path, monkeypatch: Any) -> None:
    with small_disk(tmp_path / "disk") as disk:
        monkeypatch.setenv("BB_HOME", str(disk / "bb"))
        progress.record_start("core", "rest-crud", Path("/tmp/ws"))
        progress.check_usable()  # room enough now
        fill_disk(disk)
        with pytest.raises(EnvironmentProblem, match="is full") as raised:
            progress.check_usable()
        assert "Free some space" in (raised.value.hint or "")
        with pytest.raises(EnvironmentProblem, match="is full"):
            for _ in range(50):  # until the store's own pages run out of room
                progress.record_attempt("core", _report(passed=False))


def test_a_newer_store_is_refused(isolated_home: Path) -> None:
    import sqlite3

    isolated_home.mkdir(parents=True)
    with sqlite3.connect(paths.progress_db()) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(EnvironmentProblem, match="newer bb"):
        progress.load("core")
