"""Grading on a real Docker engine, through the CLI, on the mini course's exercises."""

from __future__ import annotations

import contextlib
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
from bb.pack.manifest import load_pack
from bb.pack.scaffold import lay_solution
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
    assert document["bb_result_version"] == 2
    assert document["outcome"] == "graded"
    assert document["pack"]["id"] == "mini"
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


def _start_grading(
    workspace: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bb", "grade", *args],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
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
                or b"bb.grader.plugin" not in (proc / "cmdline").read_bytes()
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
    scratch = _scratch_of(process.pid)
    assert scratch, "the grade should have its scratch directory"
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while _grader_processes() & suites:
        assert time.monotonic() < deadline, "the grader suite outlived the killed bb"
        time.sleep(0.2)
    orphans = no_leftovers.managed_objects(orphans_only=True)
    assert orphans, "kill -9 should have left the grade's containers"
    assert all(path.exists() for path in scratch)
    run_bb("list")  # any next command
    assert not set(orphans) & set(no_leftovers.managed_objects())
    assert not any(path.exists() for path in scratch)


def test_a_missing_course_image_says_to_run_setup(tmp_path: Path, engine: Any) -> None:
    from tests.helpers import copy_mini_pack, edit_yaml

    pack = copy_mini_pack(tmp_path / "pack")
    recipe = pack / "course" / "images" / "never-built"
    recipe.mkdir()
    (recipe / "Dockerfile").write_text("FROM debian:bookworm-slim\n# never built\n")
    edit_yaml(
        pack / "course" / "course.yaml",
        {
            "images": {
                "python": {"recipe": "images/never-built"},
                "postgres": {"recipe": "images/postgres"},
                "redis": {"recipe": "images/redis"},
                "mock-origin": {"recipe": "images/mock-origin"},
            }
        },
    )
    run_bb("start", "hello", "--pack", pack, "--dir", tmp_path / "ws")
    result = run_bb("grade", cwd=tmp_path / "ws", expect=ExitCode.ENVIRONMENT)
    assert "The course images are not built yet" in result.stderr
    assert "hint: Run `bb setup` once" in result.stderr


def test_the_image_of_a_deleted_project_is_removed(tmp_path: Path, engine: Any) -> None:
    import shutil

    from bb.stack.lifecycle import app_image_tag

    workspace = _workspace(tmp_path, "hello", solved=True)
    run_bb("grade", cwd=workspace)
    tag = app_image_tag(load_pack(MINI_PACK).exercise("hello"), workspace)
    assert engine.has_image(tag)  # kept: it makes the next grade's build a cache hit
    shutil.rmtree(workspace)
    run_bb("setup")
    assert not engine.has_image(tag)


@pytest.mark.parametrize("fault", ["damaged", "read-only", "full"])
def test_a_store_that_cannot_record_refuses_the_grade_up_front(
    tmp_path: Path, isolated_home: Path, engine: Any, fault: str
) -> None:
    from bb.stack.lifecycle import app_image_tag
    from tests.helpers import fill_disk, read_only, small_disk

    workspace = _workspace(tmp_path, "hello", solved=True)
    store = isolated_home / "progress.sqlite3"
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        if fault == "damaged":
            store.write_bytes(b"not a database" * 100)
            cause = "is damaged"
        elif fault == "read-only":
            stack.enter_context(read_only(store, isolated_home))
            cause = "cannot write its progress store"
        else:
            disk = stack.enter_context(small_disk(tmp_path / "disk"))
            env["BB_HOME"] = str(disk / "bb")
            run_bb("status", "--pack", MINI_PACK, env=env)  # creates the store
            fill_disk(disk)
            cause = "is full"
        began = time.monotonic()
        result = run_bb("grade", "--json", cwd=workspace, env=env, expect=ExitCode.ENVIRONMENT)
    assert cause in result.stderr
    assert result.stdout == ""
    assert time.monotonic() - began < 10
    assert not engine.has_image(app_image_tag(load_pack(MINI_PACK).exercise("hello"), workspace))


@pytest.mark.parametrize("fault", ["damaged", "read-only"])
def test_a_store_that_fails_mid_grade_keeps_the_report(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any, fault: str
) -> None:
    from tests.helpers import read_only

    workspace = _workspace(tmp_path, "hello", solved=True)
    process = _start_grading(workspace, "--json")
    _wait_for_app_container(no_leftovers, process, isolated_home)
    store = isolated_home / "progress.sqlite3"
    with contextlib.ExitStack() as stack:
        if fault == "damaged":
            for side in isolated_home.glob("progress.sqlite3-*"):
                side.unlink()
            store.write_bytes(b"not a database" * 100)
        else:
            stack.enter_context(read_only(store, isolated_home))
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == ExitCode.ENVIRONMENT, stderr
    assert json.loads(stdout)["passed"] is True  # the grade itself is whole
    assert "The grade above could not be recorded" in stderr
    assert ("is damaged" if fault == "damaged" else "cannot write") in stderr


def _engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("the engine is not reached through a Unix socket here")
    return host.removeprefix("unix://")


def test_an_engine_that_goes_away_mid_grade_is_an_environment_problem(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any
) -> None:
    from tests.helpers import EngineProxy

    workspace = _workspace(tmp_path, "hello", solved=True)
    proxy = EngineProxy(_engine_socket(), tmp_path / "engine.sock")
    try:
        process = _start_grading(workspace, env={"DOCKER_HOST": proxy.url})
        _wait_for_app_container(no_leftovers, process, isolated_home)
    finally:
        proxy.stop()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == ExitCode.ENVIRONMENT, stderr
    assert "The Docker engine stopped answering during the grade" in stderr
    assert "✓ passed  your app's image builds" in stdout  # the report so far
    assert "Grading stopped before its verdict" in stdout
    # Its containers could not be removed without an engine; the next command sweeps them.
    assert no_leftovers.managed_objects(orphans_only=True)
    run_bb("list")
    assert no_leftovers.managed_objects(orphans_only=True) == []


def _scratch_of(pid: int) -> list[Path]:
    """The grade scratch directories a bb process owns."""
    import tempfile

    found = []
    for scratch in Path(tempfile.gettempdir()).glob("bb-grade-*"):
        with contextlib.suppress(OSError):
            if (scratch / "owner").read_text().split()[0] == str(pid):
                found.append(scratch)
    return found


@pytest.mark.parametrize(
    ("stop", "code"),
    [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGHUP, ExitCode.HANGUP)],
    ids=["SIGTERM", "SIGHUP"],
)
def test_termination_mid_grade_leaves_nothing(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any, stop: signal.Signals, code: int
) -> None:
    process = _start_grading(_workspace(tmp_path, "slow", solved=True))
    _wait_for_app_container(no_leftovers, process, isolated_home)
    scratch = _scratch_of(process.pid)
    assert scratch, "the grade should have its scratch directory"
    time.sleep(1.0)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"Stopped by {stop.name}" in stderr
    assert not any(path.exists() for path in scratch)
    assert list((isolated_home / "grades-in-flight").iterdir()) == []


def test_a_course_service_that_will_not_start_is_not_the_learners_failure(
    tmp_path: Path, no_leftovers: Any
) -> None:
    workspace = _workspace(tmp_path, "nosvc", solved=True)
    result = run_bb("grade", "--json", cwd=workspace, expect=ExitCode.ENVIRONMENT)
    assert "The cache service exited" in result.stderr
    document = json.loads(result.stdout)
    assert (document["passed"], document["complete"]) == (False, False)
    checks = _by_name(document)
    assert checks["services"]["status"] == "error"
    assert checks["hello"]["status"] == "skipped"
