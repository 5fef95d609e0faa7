"""The built-in course on a real engine: every starter fails, every solution passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ExitCode
from tests.conftest import run_bb

pytestmark = pytest.mark.docker


def test_setup_is_idempotent(engine: Any) -> None:
    result = run_bb("setup")
    assert "already there" in result.stderr


def test_course_checker_passes_on_the_built_in_course(no_leftovers: Any) -> None:
    result = run_bb("dev", "check", timeout=1800)
    assert "The pack is sound." in result.stdout
    for exercise in (
        "rest-crud", "pagination", "schema-and-migrations", "transactions", "indexing"
    ):
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
