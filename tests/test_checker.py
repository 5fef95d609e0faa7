"""The course checker's known-wrong variants: judged from grades, and graded on a real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bb.errors import ExitCode
from bb.grading.checker import judge_variant, static_problems
from bb.pack.manifest import load_pack
from bb.results.report import CheckResult, GradeReport, Status
from tests.conftest import MINI_PACK, run_bb
from tests.helpers import copy_mini_pack, edit_yaml


def _report(**statuses: Status) -> GradeReport:
    checks = tuple(CheckResult(name, name, status) for name, status in statuses.items())
    return GradeReport("hello", "Say hello", checks, duration=1.5, timings={})


def test_a_variant_that_fails_its_named_check_is_caught() -> None:
    hello = load_pack(MINI_PACK).exercise("hello")
    verdict = judge_variant(
        hello, "forgets-hello", _report(build=Status.PASSED, health=Status.PASSED,
                                        hello=Status.FAILED),
    )  # fmt: skip
    assert verdict.ok and verdict.caught_by == ("hello",)


def test_a_variant_that_passes_is_a_problem() -> None:
    hello = load_pack(MINI_PACK).exercise("hello")
    verdict = judge_variant(hello, "forgets-hello", _report(health=Status.PASSED,
                                                            hello=Status.PASSED))  # fmt: skip
    assert verdict.problem is not None and "PASSES its grader" in verdict.problem


def test_a_named_check_that_errors_or_is_skipped_does_not_count() -> None:
    hello = load_pack(MINI_PACK).exercise("hello")
    errored = judge_variant(hello, "forgets-hello", _report(health=Status.FAILED,
                                                            hello=Status.ERROR))  # fmt: skip
    assert errored.problem is not None
    assert "but hello errored: caught by an unrelated check only (health, hello)" in (
        errored.problem
    )
    skipped = judge_variant(hello, "forgets-hello", _report(app=Status.FAILED,
                                                            hello=Status.SKIPPED))  # fmt: skip
    assert skipped.problem is not None and "hello was skipped" in skipped.problem
    assert skipped.caught_by == ("app",)


def test_fails_naming_no_check_is_found_without_grading(tmp_path: Path) -> None:
    pack_dir = copy_mini_pack(tmp_path / "pack")
    manifest = pack_dir / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"wrong": {"forgets-hello": {"mistake": "m", "fails": ["helo", "app"]}}})
    pack = load_pack(pack_dir)
    problems = static_problems(pack, pack.exercise("hello"))
    assert len(problems) == 1 and "wrong.forgets-hello.fails: helo is not a check" in problems[0]


def test_an_unknown_variant_is_a_usage_error() -> None:
    result = run_bb(
        "dev", "check", "--pack", MINI_PACK, "-e", "hello", "--variant", "nope",
        expect=ExitCode.USAGE,
    )  # fmt: skip
    assert "no wrong variant called 'nope'" in result.stderr


@pytest.mark.docker
def test_dev_check_grades_wrong_variants(no_leftovers: Any) -> None:
    result = run_bb(
        "dev", "check", "--pack", MINI_PACK, "-e", "hello", expect=ExitCode.CONTENT,
        env={"COLUMNS": "200"},
    )  # fmt: skip
    lines = result.stdout.splitlines()
    caught = next(line for line in lines if "wrong variant forgets-hello" in line)
    assert caught.lstrip().startswith("✓") and "caught by hello (expected hello;" in caught
    missed = next(line for line in lines if "wrong variant greets-wrongly:" in line)
    assert missed.lstrip().startswith("✗") and "caught by hello (expected health;" in missed
    assert (
        "should fail health, but health passed: caught by an unrelated check only (hello)"
        in result.stdout
    )
    # The starter and the solution are still proven.
    assert "solution: passes" in result.stdout
    assert "The pack has problems" in result.stdout


@pytest.mark.docker
def test_variant_filter_grades_only_that_variant(no_leftovers: Any) -> None:
    result = run_bb(
        "dev", "check", "--pack", MINI_PACK, "-e", "hello", "--variant", "forgets-hello",
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert "wrong variant forgets-hello: caught by hello" in result.stdout
    assert "greets-wrongly" not in result.stdout and "starter" not in result.stdout
    assert "The pack is sound." in result.stdout


@pytest.mark.docker
def test_sigterm_stops_a_pack_check_at_once_and_leaves_nothing(
    tmp_path: Path, isolated_home: Path, no_leftovers: Any
) -> None:
    """Grades run in worker threads, which a signal does not reach: the check must stop the
    queued ones and end the running ones itself, not wait out their time limits."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from bb.stack.engine import OWNER

    pack = copy_mini_pack(tmp_path / "pack")
    # The stall solution waits on its app until the grade's time limit: make that long.
    manifest = pack / "exercises" / "stall" / "exercise.yaml"
    edit_yaml(manifest, {"grader": {"suite": "stall", "timeout": 300}})
    process = subprocess.Popen(
        [sys.executable, "-m", "bb", "dev", "check", "--pack", str(pack), "-e", "stall"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    owned = f"{OWNER}={socket.gethostname()}:{process.pid}"

    deadline = time.monotonic() + 180
    while not no_leftovers.labelled(owned):  # the stall exercise runs nothing but its app
        assert process.poll() is None and time.monotonic() < deadline, "no grade started"
        time.sleep(0.2)
    time.sleep(5)  # the solution's grade is now waiting on its stalled app
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=90)  # far below the 300 s a grade may take
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("bb dev check waited for its grades instead of stopping") from None
    assert process.returncode == ExitCode.TERMINATED, stderr
    assert no_leftovers.labelled(owned) == []
