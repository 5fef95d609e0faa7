"""Grading on a real Docker engine, through the CLI, on the mini course's exercises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ExitCode
from bb.pack import load_pack
from bb.scaffold import lay_solution
from tests.conftest import MINI_PACK, run_bb

pytestmark = pytest.mark.docker


def _workspace(tmp_path: Path, exercise: str, *, solved: bool) -> Path:
    workspace = tmp_path / exercise
    run_bb("start", exercise, "--pack", MINI_PACK, "--dir", workspace)
    if solved:
        lay_solution(load_pack(MINI_PACK).exercise(exercise), workspace)
    return workspace


def _grade_json(workspace: Path, expect: int) -> dict[str, Any]:
    result = run_bb("grade", "--json", cwd=workspace, expect=expect)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in document["checks"]}


def test_starter_fails_with_expected_arrived_and_hint(tmp_path: Path, no_leftovers: Any) -> None:
    document = _grade_json(_workspace(tmp_path, "hello", solved=False), ExitCode.CHECKS_FAILED)
    assert document["bb_result_version"] == 1
    assert document["passed"] is False
    checks = _by_name(document)
    assert [checks[n]["status"] for n in ("build", "app", "health", "restart_keeps_serving")] == [
        "passed"
    ] * 4
    hello = checks["hello"]
    assert hello["status"] == "failed"
    assert hello["expected"] == "200"
    assert "404" in hello["actual"]
    assert hello["hint"] == "Add /hello to ROUTES in answers.py."


def test_solution_passes_and_progress_is_kept(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _workspace(tmp_path, "hello", solved=True)
    document = _grade_json(workspace, ExitCode.OK)
    assert document["passed"] is True
    assert {c["status"] for c in document["checks"]} == {"passed"}
    status = run_bb("status", "--pack", MINI_PACK)
    assert "passed" in status.stdout
    table = run_bb("grade", cwd=workspace)  # the terminal rendering, too
    assert "✓ passed  GET /hello answers hi" in table.stdout
    assert "All checks passed." in table.stdout


def test_an_app_that_exits_shows_its_log_and_skips_the_checks(
    tmp_path: Path, no_leftovers: Any
) -> None:
    document = _grade_json(_workspace(tmp_path, "crash", solved=True), ExitCode.CHECKS_FAILED)
    checks = _by_name(document)
    app = checks["app"]
    assert app["status"] == "failed"
    assert "exited with status 1" in app["message"]
    assert "crashing on purpose" in app["log"]
    suite = [checks[n] for n in ("health", "hello", "restart_keeps_serving")]
    assert {c["status"] for c in suite} == {"skipped"}
    assert all("can't check until this passes" in c["message"] for c in suite)


def test_an_app_that_never_answers_fails_at_the_time_limit(
    tmp_path: Path, no_leftovers: Any
) -> None:
    began = time.monotonic()
    document = _grade_json(_workspace(tmp_path, "stall", solved=True), ExitCode.CHECKS_FAILED)
    assert time.monotonic() - began < 20 + 30  # the limit plus start-up and teardown
    checks = _by_name(document)
    assert checks["health"]["status"] == "passed"
    waited = checks["hello_answers"]
    assert waited["status"] == "failed"
    assert "time limit (20 s) while this check waited on your app" in waited["message"]
    assert "deadlock" in waited["hint"]


def test_a_grader_that_hangs_on_its_own_is_a_course_error(
    tmp_path: Path, no_leftovers: Any
) -> None:
    workspace = _workspace(tmp_path, "slow", solved=True)
    began = time.monotonic()
    result = run_bb("grade", "--json", cwd=workspace, expect=ExitCode.CONTENT)
    assert time.monotonic() - began < 25 + 30  # the limit plus start-up and teardown
    assert "the check `sleeps_too_long` was still running" in result.stderr
    assert "graders/slow/test_slow.py:15 (test_sleeps_too_long)" in result.stderr
    document = json.loads(result.stdout)  # the report so far is still printed
    assert (document["passed"], document["complete"]) == (False, False)
    checks = _by_name(document)
    assert checks["health"]["status"] == "passed"
    assert checks["sleeps_too_long"]["status"] == "error"
    assert "not in your code" in checks["sleeps_too_long"]["message"]


def test_a_silent_build_is_stopped_at_the_time_limit(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _workspace(tmp_path, "slow", solved=True)
    dockerfile = workspace / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("COPY", "RUN sleep 300\nCOPY", 1))
    began = time.monotonic()
    document = _grade_json(workspace, ExitCode.CHECKS_FAILED)
    assert time.monotonic() - began < 25 + 30  # the limit plus start-up and teardown
    build = _by_name(document)["build"]
    assert build["status"] == "failed"
    assert "time limit" in build["log"]


def test_a_suite_without_checks_is_a_course_error(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _workspace(tmp_path, "broken", solved=True)
    result = run_bb("grade", cwd=workspace, expect=ExitCode.CONTENT)
    assert "holds no checks" in result.stderr
    assert "course bug" in result.stderr


@pytest.mark.parametrize(
    "settings",
    [
        {"PYTEST_ADDOPTS": "--co"},  # collects, runs nothing, exits 0
        {"PYTEST_ADDOPTS": "-k zzz", "PYTEST_PLUGINS": "no_such_plugin"},
    ],
    ids=["collect-only", "deselect-all"],
)
def test_pytest_settings_of_the_environment_cannot_change_the_grade(
    tmp_path: Path, no_leftovers: Any, settings: dict[str, str]
) -> None:
    workspace = _workspace(tmp_path, "hello", solved=False)
    result = run_bb("grade", "--json", cwd=workspace, env=settings, expect=ExitCode.CHECKS_FAILED)
    checks = _by_name(json.loads(result.stdout))
    assert set(checks) == {"build", "app", "health", "hello", "restart_keeps_serving"}
    assert checks["hello"]["status"] == "failed"
    assert checks["health"]["status"] == "passed"


def test_a_grader_that_exits_at_import_is_a_course_error(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _workspace(tmp_path, "exits", solved=True)
    result = run_bb("grade", cwd=workspace, expect=ExitCode.CONTENT)
    assert "ended before it collected its checks (pytest exit 0)" in result.stderr
    assert "✓ passed  your app's image builds" in result.stdout  # the report so far
    assert "All checks passed" not in result.stdout
    assert "Grading stopped before its verdict" in result.stdout


def test_a_grader_that_dies_mid_suite_passes_nothing_it_did_not_report(
    tmp_path: Path, no_leftovers: Any
) -> None:
    workspace = _workspace(tmp_path, "dies", solved=True)
    result = run_bb("grade", "--json", cwd=workspace, expect=ExitCode.CONTENT)
    assert "stopped before every check reported" in result.stderr
    document = json.loads(result.stdout)
    assert (document["passed"], document["complete"]) == (False, False)
    checks = _by_name(document)
    assert checks["health"]["status"] == "passed"
    for unreported in ("dies", "after_the_death"):
        assert checks[unreported]["status"] == "error"
        assert "stopped before this check reported" in checks[unreported]["message"]


def _start_grading(workspace: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bb", "grade"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _wait_for_app_container(
    engine: Any, process: subprocess.Popen[str], home: Path, timeout: float = 120
) -> None:
    """Wait until this grade (found through its journal entry) has started the app."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "the grade ended before it started the app"
        assert time.monotonic() < deadline, "the grade never started the app"
        entries = list((home / "grades-in-flight").glob("*"))
        if entries and f"bb-{entries[0].name}-app" in engine.managed_objects():
            return
        time.sleep(0.2)


def test_ctrl_c_mid_grade_leaves_nothing(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any
) -> None:
    process = _start_grading(_workspace(tmp_path, "slow", solved=True))
    _wait_for_app_container(no_leftovers, process, isolated_home)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert "Interrupted" in stderr


def _grader_processes(parent: int | None = None) -> set[int]:
    """Pids of running grader suites (pytest with bb's plugin), optionally of one parent."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if (
                not proc.name.isdigit()
                or b"bb.grader_plugin" not in (proc / "cmdline").read_bytes()
            ):
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent is None or ppid == parent:
            found.add(int(proc.name))
    return found


def test_kill_9_leftovers_are_swept_by_the_next_command(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any
) -> None:
    process = _start_grading(_workspace(tmp_path, "slow", solved=True))
    _wait_for_app_container(no_leftovers, process, isolated_home)
    suites = _grader_processes(parent=process.pid)
    assert suites, "the grade should be running its grader suite"
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while _grader_processes() & suites:
        assert time.monotonic() < deadline, "the grader suite outlived the killed bb"
        time.sleep(0.2)
    orphans = no_leftovers.managed_objects(orphans_only=True)
    assert orphans, "kill -9 should have left the grade's containers"
    run_bb("list")  # any next command
    assert not set(orphans) & set(no_leftovers.managed_objects())


def test_a_missing_course_image_says_to_run_setup(tmp_path: Path, engine: Any) -> None:
    from tests.helpers import copy_mini_pack, edit_yaml

    pack = copy_mini_pack(tmp_path / "pack")
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "Dockerfile").write_text("FROM debian:bookworm-slim\n# never built\n")
    edit_yaml(pack / "course" / "course.yaml", {"images": {"python": {"recipe": str(recipe)}}})
    run_bb("start", "hello", "--pack", pack, "--dir", tmp_path / "ws")
    result = run_bb("grade", cwd=tmp_path / "ws", expect=ExitCode.ENVIRONMENT)
    assert "The course images are not built yet" in result.stderr
    assert "hint: Run `bb setup` once" in result.stderr


def test_the_image_of_a_deleted_project_is_removed(tmp_path: Path, engine: Any) -> None:
    import shutil

    from bb.grading import app_image_tag

    workspace = _workspace(tmp_path, "hello", solved=True)
    run_bb("grade", cwd=workspace)
    tag = app_image_tag(load_pack(MINI_PACK).exercise("hello"), workspace)
    assert engine.has_image(tag)  # kept: it makes the next grade's build a cache hit
    shutil.rmtree(workspace)
    run_bb("setup")
    assert not engine.has_image(tag)
