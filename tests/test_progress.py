"""The progress store: SQLite under BB_HOME, never left half-written, keyed by the pack's
identity (where it lives), never by the id a pack declares."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bb import paths, progress
from bb.errors import EnvironmentProblem
from bb.pack.manifest import PackIdentity, load_pack
from bb.pack.scaffold import Record, write_record
from bb.results.report import CheckResult, GradeReport, Status
from tests.conftest import MINI_PACK, ROOT
from tests.helpers import fill_disk, read_only, small_disk

BUILTIN = PackIdentity(where="builtin", id="core", title="Backend Bootcamp", digest="a" * 64)
#: Another pack that calls itself core: it must never pass the built-in course.
IMPOSTOR = PackIdentity(where="/tmp/fake", id="core", title="Backend Bootcamp", digest="b" * 64)


def _report(passed: bool, exercise: str = "rest-crud") -> GradeReport:
    status = Status.PASSED if passed else Status.FAILED
    return GradeReport(
        exercise=exercise,
        title="t",
        duration=2.0,
        timings={},
        checks=(CheckResult(name="a", description="a", status=status),),
    )


def test_lives_under_bb_home(isolated_home: Path) -> None:
    progress.record_start(BUILTIN, "rest-crud", Path("/tmp/ws"))
    assert paths.progress_db() == isolated_home / "progress.sqlite3"
    assert paths.progress_db().is_file()


def test_start_attempts_and_pass() -> None:
    progress.record_start(BUILTIN, "rest-crud", Path("/tmp/ws"))
    progress.record_attempt(BUILTIN, _report(passed=False))
    state = progress.load(BUILTIN)["rest-crud"]
    assert (state.status, state.attempts, state.workspace) == ("started", 1, Path("/tmp/ws"))
    progress.record_attempt(BUILTIN, _report(passed=True))
    progress.record_attempt(BUILTIN, _report(passed=False))  # a later failure keeps the pass
    state = progress.load(BUILTIN)["rest-crud"]
    assert (state.status, state.attempts, state.passed_digest) == ("passed", 3, "a" * 64)


def test_a_pack_that_calls_itself_core_passes_nothing_of_the_built_in_course() -> None:
    progress.record_start(IMPOSTOR, "rest-crud", Path("/tmp/ws"))
    progress.record_attempt(IMPOSTOR, _report(passed=True))
    assert progress.load(BUILTIN) == {}
    assert progress.load(IMPOSTOR)["rest-crud"].status == "passed"


def test_a_pass_outlives_a_change_of_the_pack_and_keeps_its_digest() -> None:
    progress.record_attempt(BUILTIN, _report(passed=True))
    changed = PackIdentity(where="builtin", id="core", title="Backend Bootcamp", digest="c" * 64)
    progress.record_attempt(changed, _report(passed=True))
    state = progress.load(changed)["rest-crud"]
    assert (state.status, state.passed_digest, state.attempts) == ("passed", "a" * 64, 2)
    with sqlite3.connect(paths.progress_db()) as conn:
        digests = [row[0] for row in conn.execute("SELECT pack_digest FROM attempts ORDER BY id")]
    assert digests == ["a" * 64, "c" * 64]


def _v1_store(rows: list[tuple[str, str, str | None, float, float | None]]) -> None:
    """A progress store as bb wrote it before packs were known by where they live."""
    paths.progress_db().parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(paths.progress_db()) as conn:
        conn.executescript(
            """
            CREATE TABLE exercises (course TEXT NOT NULL, exercise TEXT NOT NULL,
                workspace TEXT, started_at REAL NOT NULL, passed_at REAL,
                PRIMARY KEY (course, exercise));
            CREATE TABLE attempts (id INTEGER PRIMARY KEY, course TEXT NOT NULL,
                exercise TEXT NOT NULL, at REAL NOT NULL, passed INTEGER NOT NULL,
                checks_passed INTEGER NOT NULL, checks_total INTEGER NOT NULL,
                duration REAL NOT NULL);
            PRAGMA user_version = 1;
            """
        )
        for course, exercise, workspace, started, passed in rows:
            conn.execute(
                "INSERT INTO exercises VALUES (?, ?, ?, ?, ?)",
                (course, exercise, workspace, started, passed),
            )
            conn.execute(
                "INSERT INTO attempts (course, exercise, at, passed, checks_passed, "
                "checks_total, duration) VALUES (?, ?, ?, ?, 1, 1, 1.0)",
                (course, exercise, started + 1, int(passed is not None)),
            )


def test_a_v1_store_is_migrated_by_what_each_project_says(tmp_path: Path) -> None:
    fake = tmp_path / "fake-pack"
    fake.mkdir()
    builtin_project, fake_project, mini_project = (tmp_path / n for n in ("a", "b", "c"))
    write_record(builtin_project, Record(pack=ROOT, exercise="rest-crud", bb_version="0"))
    write_record(fake_project, Record(pack=fake, exercise="transactions", bb_version="0"))
    write_record(mini_project, Record(pack=MINI_PACK, exercise="hello", bb_version="0"))
    _v1_store(
        [
            ("core", "rest-crud", str(builtin_project), 1.0, 2.0),
            # A pass a pack calling itself core recorded: its project names the real pack.
            ("core", "transactions", str(fake_project), 1.0, 2.0),
            ("mini", "hello", str(mini_project), 1.0, None),
            # No project left to ask: a core row is the built-in course's, others unknown.
            ("core", "gone", str(tmp_path / "deleted"), 3.0, 4.0),
            ("other", "x", None, 5.0, 6.0),
        ]
    )
    builtin = progress.load(load_pack(ROOT).identity)
    assert sorted(builtin) == ["gone", "rest-crud"]
    assert (builtin["rest-crud"].status, builtin["rest-crud"].attempts) == ("passed", 1)
    assert builtin["rest-crud"].passed_digest is None  # passed before digests were kept
    impostor = PackIdentity(where=str(fake), id="core", title="", digest="")
    assert progress.load(impostor)["transactions"].status == "passed"
    mini = progress.load(load_pack(MINI_PACK).identity)
    assert (mini["hello"].status, mini["hello"].attempts) == ("started", 1)
    with sqlite3.connect(paths.progress_db()) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == progress.SCHEMA_VERSION
        kept = conn.execute("SELECT pack FROM exercises WHERE exercise = 'x'").fetchall()
        assert kept == [("unknown:other",)]
        assert conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 5


def test_a_damaged_store_is_reported_not_overwritten(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    paths.progress_db().write_bytes(b"this is not a database" * 100)
    with pytest.raises(EnvironmentProblem, match="is damaged") as raised:
        progress.load(BUILTIN)
    assert "Move the file aside" in (raised.value.hint or "")
    assert paths.progress_db().read_bytes() == b"this is not a database" * 100
    with pytest.raises(EnvironmentProblem, match="is damaged"):
        progress.check_usable()


def test_a_read_only_store_names_permissions_not_damage(isolated_home: Path) -> None:
    progress.record_start(BUILTIN, "rest-crud", Path("/tmp/ws"))
    with read_only(paths.progress_db(), isolated_home):
        with pytest.raises(EnvironmentProblem, match="cannot write") as raised:
            progress.load(BUILTIN)
        assert "writable" in (raised.value.hint or "")
        assert "aside" not in (raised.value.hint or "")
        with pytest.raises(EnvironmentProblem, match="cannot write"):
            progress.check_usable()


def test_a_full_disk_is_named_before_a_grade_is_spent(tmp_path: Path, monkeypatch: Any) -> None:
    with small_disk(tmp_path / "disk") as disk:
        monkeypatch.setenv("BB_HOME", str(disk / "bb"))
        progress.record_start(BUILTIN, "rest-crud", Path("/tmp/ws"))
        progress.check_usable()  # room enough now
        fill_disk(disk)
        with pytest.raises(EnvironmentProblem, match="is full") as raised:
            progress.check_usable()
        assert "Free some space" in (raised.value.hint or "")
        with pytest.raises(EnvironmentProblem, match="is full"):
            for _ in range(50):  # until the store's own pages run out of room
                progress.record_attempt("core", _report(passed=False))


def test_a_newer_store_is_refused(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    with sqlite3.connect(paths.progress_db()) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(EnvironmentProblem, match="newer bb"):
        progress.load(BUILTIN)


def _v2_store() -> None:
    """A progress store as bb wrote it before hints escalated and grades could be partial."""
    paths.progress_db().parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(paths.progress_db()) as conn:
        conn.executescript(
            """
            CREATE TABLE exercises (pack TEXT NOT NULL, exercise TEXT NOT NULL,
                workspace TEXT, started_at REAL NOT NULL, passed_at REAL, passed_digest TEXT,
                PRIMARY KEY (pack, exercise));
            CREATE TABLE attempts (id INTEGER PRIMARY KEY, pack TEXT NOT NULL,
                pack_digest TEXT, exercise TEXT NOT NULL, at REAL NOT NULL,
                passed INTEGER NOT NULL, checks_passed INTEGER NOT NULL,
                checks_total INTEGER NOT NULL, duration REAL NOT NULL);
            INSERT INTO exercises VALUES ('builtin', 'rest-crud', '/tmp/ws', 1.0, 3.0, 'd1');
            INSERT INTO exercises VALUES ('builtin', 'pagination', NULL, 4.0, NULL, NULL);
            INSERT INTO attempts (pack, pack_digest, exercise, at, passed, checks_passed,
                checks_total, duration) VALUES ('builtin', 'd0', 'rest-crud', 2.0, 0, 3, 9, 5.0),
                ('builtin', 'd1', 'rest-crud', 3.0, 1, 9, 9, 6.0),
                ('builtin', 'd1', 'pagination', 5.0, 0, 1, 8, 7.0);
            PRAGMA user_version = 2;
            """
        )


def test_a_v2_store_gains_hints_and_partial_grades_and_loses_nothing() -> None:
    _v2_store()
    state = progress.load(BUILTIN)
    assert (state["rest-crud"].status, state["rest-crud"].attempts) == ("passed", 2)
    assert state["rest-crud"].passed_digest == "d1"
    assert (state["pagination"].status, state["pagination"].attempts) == ("started", 1)
    assert progress.revealed_hints(BUILTIN, "rest-crud") == {}
    with sqlite3.connect(paths.progress_db()) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == progress.SCHEMA_VERSION == 3
        rows = conn.execute(
            "SELECT pack_digest, exercise, at, passed, checks_passed, checks_total, duration, "
            "selection FROM attempts ORDER BY id"
        ).fetchall()
    assert rows == [
        ("d0", "rest-crud", 2.0, 0, 3, 9, 5.0, None),
        ("d1", "rest-crud", 3.0, 1, 9, 9, 6.0, None),
        ("d1", "pagination", 5.0, 0, 1, 8, 7.0, None),
    ]
    # and the migrated store takes the new kinds of record
    progress.record_attempt(BUILTIN, _failing_with_hint(), hints=_shown("a", 1))
    assert progress.revealed_hints(BUILTIN, "rest-crud")["a"].level == 1


def _failing_with_hint() -> GradeReport:
    check = CheckResult(
        name="a", description="the a check", status=Status.FAILED, hint="one",
        hints=("one", "two", "three"),
    )  # fmt: skip
    return GradeReport(exercise="rest-crud", title="t", duration=1.0, timings={}, checks=(check,))


def _shown(check: str, level: int) -> list[progress.RevealedHint]:
    return [progress.RevealedHint(check, f"the {check} check", level, ("one", "two", "three"))]


def test_a_partial_grade_is_an_attempt_and_never_a_pass() -> None:
    from bb.results.report import Selection

    whole = _report(passed=True)
    partial = dataclasses.replace(whole, selection=Selection("a", ("b",)))
    assert partial.all_ran_passed and not partial.passed
    progress.record_attempt(BUILTIN, partial)
    state = progress.load(BUILTIN)["rest-crud"]
    assert (state.status, state.attempts) == ("started", 1)
    with sqlite3.connect(paths.progress_db()) as conn:
        assert conn.execute("SELECT passed, selection FROM attempts").fetchall() == [(0, "a")]


def test_hints_are_kept_per_exercise_and_check_and_revealed_one_level_at_a_time() -> None:
    progress.record_attempt(BUILTIN, _failing_with_hint(), hints=_shown("a", 1))
    assert progress.revealed_hints(BUILTIN, "pagination") == {}
    assert progress.revealed_hints(IMPOSTOR, "rest-crud") == {}
    item, advanced = progress.reveal_next_hint(BUILTIN, "rest-crud", "test_a")
    assert (advanced, item.seen, item.more) == (True, ("one", "two"), True)
    item, advanced = progress.reveal_next_hint(BUILTIN, "rest-crud", "a")
    assert (advanced, item.level, item.more) == (True, 3, False)
    item, advanced = progress.reveal_next_hint(BUILTIN, "rest-crud", "a")
    assert (advanced, item.level) == (False, 3)
    assert progress.revealed_hints(BUILTIN, "rest-crud")["a"].level == 3
    from bb.errors import UserError

    with pytest.raises(UserError, match="no hint for a check called 'b'") as raised:
        progress.reveal_next_hint(BUILTIN, "rest-crud", "b")
    assert "Checks with hints so far: a." in (raised.value.hint or "")
