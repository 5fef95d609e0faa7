"""The command line: help, exit codes, errors as one sentence plus a fix."""

from __future__ import annotations

import json
from pathlib import Path

from bb.errors import ExitCode
from tests.conftest import MINI_PACK, run_bb


def test_help_lists_the_commands() -> None:
    result = run_bb("--help")
    for command in ("setup", "list", "start", "grade", "status", "hint", "dev"):
        assert command in result.stdout


def test_help_does_not_import_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from bb.cli import run; run(['--help']); "
        "print(sorted(m for m in ('docker','pydantic','jinja2','httpx','psycopg','yaml', "
        "'rich.markdown','markdown_it') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_help_reads_like_plain_text() -> None:
    result = run_bb("grade", "--help")
    assert "--json" in result.stdout
    assert "<bool>" not in result.stdout
    assert "\x1b" not in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run_bb("frobnicate", expect=ExitCode.USAGE)
    assert "No such command" in result.stderr


def test_list_shows_the_course_with_status() -> None:
    result = run_bb("list")
    assert "rest-crud" in result.stdout and "transactions" in result.stdout
    assert "not started" in result.stdout


def test_start_scaffolds_records_and_keeps_edits(tmp_path: Path) -> None:
    result = run_bb("start", "hello", "--pack", MINI_PACK)
    workspace = tmp_path / "projects" / "hello"
    assert str(workspace) in result.stdout
    assert "Make GET /hello answer 200" in result.stdout  # the lesson
    assert (workspace / ".bb" / "project.yaml").is_file()
    (workspace / "answers.py").write_text("# mine\n")
    again = run_bb("start", "hello", "--pack", MINI_PACK)
    assert "left it untouched" in again.stderr
    assert (workspace / "answers.py").read_text() == "# mine\n"
    assert "started" in run_bb("status", "--pack", MINI_PACK).stdout


def test_start_without_exercise_picks_the_first_unfinished(tmp_path: Path) -> None:
    run_bb("start", "--dir", tmp_path / "here")
    assert "rest-crud" in (tmp_path / "here" / ".bb" / "project.yaml").read_text()


def test_start_unknown_exercise(tmp_path: Path) -> None:
    result = run_bb("start", "nope", expect=ExitCode.USAGE)
    assert "error: There is no exercise called 'nope'" in result.stderr
    assert (
        "hint: Known exercises: rest-crud, pagination, schema-and-migrations, transactions, "
        "indexing"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_hint_inside_a_workspace_shows_its_exercise(tmp_path: Path) -> None:
    run_bb("start", "transactions", "--dir", tmp_path / "ws")
    result = run_bb("hint", cwd=tmp_path / "ws")
    assert "Hints for transactions" in result.stdout
    assert "lost-update" in result.stdout


def test_grade_outside_a_project(tmp_path: Path) -> None:
    result = run_bb("grade", cwd=tmp_path, expect=ExitCode.USAGE)
    assert "is not inside a bb project" in result.stderr


def test_grade_without_docker_says_how_to_fix_it(tmp_path: Path) -> None:
    run_bb("start", "hello", "--pack", MINI_PACK, "--dir", tmp_path / "ws")
    result = run_bb(
        "grade",
        "--json",
        cwd=tmp_path / "ws",
        expect=ExitCode.ENVIRONMENT,
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )
    assert "could not reach a Docker engine" in result.stderr
    assert "hint: Start the Docker engine" in result.stderr
    assert result.stdout == ""  # --json keeps stdout for the document alone


def test_broken_pack_is_a_content_error(tmp_path: Path) -> None:
    (tmp_path / "pack" / "course").mkdir(parents=True)
    (tmp_path / "pack" / "course" / "course.yaml").write_text("format_version: 1\nid: x\n")
    result = run_bb("list", "--pack", tmp_path / "pack", expect=ExitCode.CONTENT)
    assert "course.yaml: title: Field required" in result.stderr


def test_dev_check_without_grading_finds_static_problems() -> None:
    result = run_bb("dev", "check", "--pack", MINI_PACK, "--no-grade", expect=ExitCode.CONTENT)
    assert "graders/broken: no test_*.py files" in result.stdout.replace("\n", "")


def test_unexpected_errors_hide_the_traceback_unless_debug(tmp_path: Path) -> None:
    # A progress store that is a directory makes sqlite fail in a way bb does not expect.
    home = tmp_path / "bb-home"
    (home / "progress.sqlite3").mkdir(parents=True)
    result = run_bb("status", expect=ExitCode.ENVIRONMENT)
    assert "Traceback" not in result.stderr
    debug = run_bb("--debug", "status", expect=ExitCode.ENVIRONMENT)
    assert "Traceback" in debug.stderr


def test_json_document_shape_is_stable() -> None:
    from bb.report import CheckResult, GradeReport, Status, to_json

    report = GradeReport(
        exercise="e",
        title="E",
        duration=0.1,
        timings={},
        checks=(CheckResult(name="n", description="d", status=Status.PASSED),),
    )
    assert json.loads(json.dumps(to_json(report)))["passed"] is True


def _colour_codes(text: str) -> list[str]:
    """SGR parameters that set a foreground or background colour."""
    import re

    codes = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        codes += [
            p
            for p in params.split(";")
            if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107)
        ]
    return codes


def test_no_color_is_honoured_and_meaning_survives_without_colour(tmp_path: Path) -> None:
    run_bb("start", "rest-crud", "--dir", tmp_path / "ws")
    coloured = run_bb("list", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert _colour_codes(coloured.stdout), "FORCE_COLOR alone should colour the output"
    plain = run_bb("list", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert _colour_codes(plain.stdout) == []
    assert "… started" in plain.stdout  # the glyph and the word carry the meaning


def test_setup_shows_each_builds_progress_from_its_steps() -> None:
    import io

    from rich.console import Console

    from bb.cli import _BuildProgress

    console = Console(file=io.StringIO(), width=100, force_terminal=False, no_color=True)
    with _BuildProgress(console) as progress:
        progress.image("python", "bb/python:abc")
        for line in ("Step 1/3 : FROM debian", "noise \x1b[2J", "Step 3/3 : RUN pip [x]"):
            progress.line(line)
        task = progress.progress.tasks[0]
        assert (task.completed, task.total) == (2, 3)
        assert task.fields["step"] == "RUN pip [x]"
    assert "building python" in console.file.getvalue()  # type: ignore[attr-defined]


def test_an_unknown_isolation_level_is_a_usage_error(tmp_path: Path) -> None:
    run_bb("start", "hello", "--pack", MINI_PACK, "--dir", tmp_path / "ws")
    result = run_bb(
        "grade", cwd=tmp_path / "ws", expect=ExitCode.USAGE, env={"BB_ISOLATION": "lax"}
    )
    assert "BB_ISOLATION" in result.stderr
    assert "'standard', 'strict'" in result.stderr
    flag = run_bb("grade", "--isolation", "none", cwd=tmp_path / "ws", expect=ExitCode.USAGE)
    assert "--isolation" in flag.stderr
