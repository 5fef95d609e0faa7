"""After `bb start`: the lesson again, the reference solution as a diff, a reset with backups."""

from __future__ import annotations

from pathlib import Path

from bb import progress
from bb.errors import ExitCode
from bb.pack.manifest import load_pack
from bb.results.report import CheckResult, GradeReport, Status
from tests.conftest import MINI_PACK, run_bb


def _start(tmp_path: Path) -> Path:
    workspace = tmp_path / "hello"
    run_bb("start", "hello", "--pack", MINI_PACK, "--dir", workspace)
    return workspace


def _record_pass() -> None:
    check = CheckResult(name="hello", description="hello", status=Status.PASSED)
    report = GradeReport("hello", "Say hello", (check,), duration=1.0, timings={})
    progress.record_attempt(load_pack(MINI_PACK).identity, report)


def test_lesson_is_shown_again(tmp_path: Path) -> None:
    workspace = _start(tmp_path)
    lesson = (MINI_PACK / "course" / "lessons" / "hello.md").read_text().splitlines()[0]
    shown = run_bb("lesson", cwd=workspace).stdout
    assert lesson.lstrip("# ").strip() in shown


def test_solution_stays_closed_until_passed(tmp_path: Path) -> None:
    workspace = _start(tmp_path)
    closed = run_bb("solution", cwd=workspace, expect=ExitCode.USAGE)
    assert "not passed hello yet" in closed.stderr
    declined = run_bb("solution", "--force", cwd=workspace, input="n\n", expect=ExitCode.USAGE)
    assert "+++ solution/" not in declined.stdout
    forced = run_bb("solution", "--force", cwd=workspace, input="y\n")
    assert "+++ solution/answers.py" in forced.stdout


def test_solution_after_passing_is_a_diff_of_the_learners_files(tmp_path: Path) -> None:
    workspace = _start(tmp_path)
    (workspace / "answers.py").write_text("MINE = 'learner line'\n")
    _record_pass()
    shown = run_bb("solution", cwd=workspace).stdout
    assert "--- yours/answers.py" in shown
    assert "-MINE = 'learner line'" in shown
    solution = (MINI_PACK / "exercises" / "hello" / "solution" / "answers.py").read_text()
    assert f"+{solution.splitlines()[0]}" in shown


def test_reset_restores_the_starter_and_keeps_the_work(tmp_path: Path) -> None:
    workspace = _start(tmp_path)
    starter = (workspace / "answers.py").read_text()
    (workspace / "answers.py").write_text("MINE = 1\n")
    (workspace / "notes.txt").write_text("my notes\n")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "HEAD").write_text("ref: refs/heads/main\n")

    declined = run_bb("reset", cwd=workspace, input="n\n", expect=ExitCode.USAGE)
    assert (workspace / "answers.py").read_text() == "MINE = 1\n", declined
    run_bb("reset", "--yes", cwd=workspace)

    assert (workspace / "answers.py").read_text() == starter
    assert not (workspace / "notes.txt").exists()
    assert (workspace / ".git" / "HEAD").is_file(), "the learner's history stays in place"
    assert (workspace / ".bb" / "project.yaml").is_file()
    listed = run_bb("reset", "--list", cwd=workspace).stdout
    backups = list((Path(progress.paths.backups()) / "hello").iterdir())
    assert len(backups) == 1
    assert (backups[0] / "answers.py").read_text() == "MINE = 1\n"
    assert (backups[0] / "notes.txt").read_text() == "my notes\n"
    assert backups[0].name in listed


def test_reset_outside_a_project_names_the_fix(tmp_path: Path) -> None:
    result = run_bb(
        "reset", "hello", "--pack", MINI_PACK, "--yes", cwd=tmp_path, expect=ExitCode.USAGE
    )
    assert "bb start hello" in result.stderr
