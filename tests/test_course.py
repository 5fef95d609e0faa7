"""The built-in course on a real engine: every starter fails, every solution passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ExitCode
from bb.pack.manifest import load_pack
from tests.conftest import ROOT, run_bb

pytestmark = pytest.mark.docker


def test_setup_is_idempotent(engine: Any) -> None:
    result = run_bb("setup")
    assert "already there" in result.stderr


@pytest.mark.parametrize("exercise", list(load_pack(ROOT).exercises))
def test_course_checker_passes_on_each_built_in_exercise(exercise: str, no_leftovers: Any) -> None:
    # One exercise per test: its starter fails, its solution passes, and each of its wrong
    # variants fails the checks it names (the whole course takes the better part of an hour).
    result = run_bb("dev", "check", "-e", exercise, timeout=2400)
    assert "The pack is sound." in result.stdout
    assert f"✓ {exercise}" in result.stdout


def test_a_learner_grades_the_rest_crud_starter(tmp_path: Path, no_leftovers: Any) -> None:
    run_bb("start", "rest-crud")
    workspace = tmp_path / "projects" / "rest-crud"
    result = run_bb("grade", "--json", cwd=workspace, expect=ExitCode.CHECKS_FAILED)
    document = json.loads(result.stdout)
    statuses = {c["name"]: c["status"] for c in document["checks"]}
    # The starter builds, migrates and starts: the failures are the learner's to fix.
    assert statuses["build"] == statuses["migrate"] == statuses["app"] == "passed"
    failed = [c for c in document["checks"] if c["status"] == "failed"]
    assert failed and all(c["message"] for c in failed)
    assert any(c["hint"] for c in failed)


def test_the_http_from_scratch_starter_runs_and_fails_the_first_check(
    tmp_path: Path, no_leftovers: Any
) -> None:
    """No Dockerfile: the starter runs from `sh run.sh` in the course's python image, accepts
    connections, answers nothing yet; the later checks wait for the first."""
    run_bb("start", "http-from-scratch")
    workspace = tmp_path / "projects" / "http-from-scratch"
    assert not (workspace / "Dockerfile").exists()
    result = run_bb("grade", "--json", cwd=workspace, expect=ExitCode.CHECKS_FAILED)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["build"]["status"] == checks["app"]["status"] == "passed"
    assert checks["root"]["status"] == "failed"
    assert "closed the connection without sending anything" in checks["root"]["message"]
    later = [c for name, c in checks.items() if name not in ("build", "app", "root")]
    assert len(later) == 7
    assert all(c["status"] == "skipped" and "until root passes" in c["message"] for c in later)
