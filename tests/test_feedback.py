"""What a learner sees while and after grading, on a real Docker engine: hints that escalate
across grades, partial grades with -k, and check results as they happen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ExitCode
from bb.pack.manifest import load_pack
from bb.pack.scaffold import lay_solution
from tests.conftest import MINI_PACK, run_bb

pytestmark = pytest.mark.docker

HELLO_HINTS = (
    "Add /hello to ROUTES in answers.py.",
    "ROUTES maps a path to the bytes the server answers with; /hello is missing from it.",
    'The whole fix: ROUTES = {"/health": b"ok", "/hello": b"hi"}.',
)


def _workspace(tmp_path: Path, exercise: str, *, solved: bool) -> Path:
    workspace = tmp_path / exercise
    run_bb("start", exercise, "--pack", MINI_PACK, "--dir", workspace)
    if solved:
        lay_solution(load_pack(MINI_PACK).exercise(exercise), workspace)
    return workspace


def _checks(result: Any) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def test_a_check_that_fails_again_shows_its_next_hint(tmp_path: Path, no_leftovers: Any) -> None:
    workspace = _workspace(tmp_path, "hello", solved=False)
    assert "appear here once it fails" in run_bb("hint", cwd=workspace).stdout
    first = _checks(run_bb("grade", "--json", cwd=workspace, expect=ExitCode.CHECKS_FAILED))
    assert (first["hello"]["hint"], first["hello"]["hint_level"]) == (HELLO_HINTS[0], 1)
    assert first["hello"]["hint_levels"] == 3
    assert first["health"]["hint"] is None  # a passing check shows none

    again = run_bb("grade", cwd=workspace, expect=ExitCode.CHECKS_FAILED)
    assert f"hint 2/3: {HELLO_HINTS[1]}" in " ".join(again.stdout.split())
    assert HELLO_HINTS[0] not in again.stdout

    listed = " ".join(run_bb("hint", cwd=workspace).stdout.split())
    assert "GET /hello must answer hi." in listed  # the exercise's own hints stay
    assert f"1/3 {HELLO_HINTS[0]} 2/3 {HELLO_HINTS[1]}" in listed
    assert HELLO_HINTS[2] not in listed
    assert "`bb hint --next hello` reveals level 3." in listed

    deeper = " ".join(run_bb("hint", "--next", "hello", cwd=workspace).stdout.split())
    assert f"3/3 {HELLO_HINTS[2]}" in deeper
    last = run_bb("hint", "hello", "--next", "hello", "--pack", MINI_PACK)  # from anywhere
    assert "That was the last hint for hello" in last.stdout
    unknown = run_bb("hint", "--next", "health", cwd=workspace, expect=ExitCode.USAGE)
    assert "Checks with hints so far: hello." in unknown.stderr

    third = _checks(run_bb("grade", "--json", cwd=workspace, expect=ExitCode.CHECKS_FAILED))
    assert (third["hello"]["hint"], third["hello"]["hint_level"]) == (HELLO_HINTS[2], 3)


def test_k_runs_only_the_chosen_checks_and_never_records_a_pass(
    tmp_path: Path, no_leftovers: Any
) -> None:
    workspace = _workspace(tmp_path, "hello", solved=True)
    # pytest settings of the learner's reach neither the selection nor the suite
    hostile = {"PYTEST_ADDOPTS": "-k health --co -p no:bb.grader.plugin", "PYTEST_PLUGINS": "x"}
    partial = run_bb("grade", "-k", "hello", "--json", cwd=workspace, env=hostile)
    document = json.loads(partial.stdout)
    assert [c["name"] for c in document["checks"]] == ["build", "app", "hello"]
    assert {c["status"] for c in document["checks"]} == {"passed"}
    assert document["passed"] is False
    assert document["filter"] == {
        "pattern": "hello",
        "left_out": ["health", "restart_keeps_serving"],
    }
    assert "partial grade (-k hello)" in partial.stderr.lower()
    status = run_bb("status", "--pack", MINI_PACK).stdout
    assert "0 of" in status and "✓ passed" not in status

    table = run_bb("grade", "-k", "not restart", cwd=workspace)
    assert "Partial grade (-k not restart, 1 check left out)" in " ".join(table.stdout.split())
    assert "serves again after a restart" not in table.stdout

    none = run_bb("grade", "-k", "goodbye", cwd=workspace, expect=ExitCode.USAGE)
    assert "-k 'goodbye' selects none of the checks of hello" in none.stderr
    assert "health, hello, restart_keeps_serving" in none.stderr
    bad = run_bb("grade", "-k", "hello and", cwd=workspace, expect=ExitCode.USAGE)
    assert "is not a pattern bb can read" in bad.stderr

    whole = run_bb("grade", "--json", cwd=workspace)  # the same project, every check: a pass
    assert json.loads(whole.stdout)["filter"] is None
    assert "1 of" in run_bb("status", "--pack", MINI_PACK).stdout


def test_each_check_shows_as_it_finishes_while_the_suite_runs_on(
    tmp_path: Path, no_leftovers: Any
) -> None:
    """The stall exercise's second check waits on an app that never answers, until the 20 s
    limit: the first check's line must arrive long before the grade ends."""
    workspace = _workspace(tmp_path, "stall", solved=True)
    arrivals: list[tuple[float, str, bool]] = []  # when, the line, whether bb still ran
    with subprocess.Popen(
        [sys.executable, "-m", "bb", "grade", "--json"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    ) as process:

        def read_stderr() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                arrivals.append((time.monotonic(), line.rstrip("\n"), process.poll() is None))

        reader = threading.Thread(target=read_stderr)
        reader.start()
        assert process.stdout is not None
        stdout = process.stdout.read()
        process.wait(timeout=120)
        ended = time.monotonic()
        reader.join(timeout=10)
    assert process.returncode == ExitCode.CHECKS_FAILED, arrivals
    lines = [line for _, line, _ in arrivals]
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(prefix))
        for prefix in (
            "✓ passed  your app's image builds",
            "✓ passed  your app starts",
            "✓ passed  GET /health answers 200",
            "✗ failed  GET /hello answers, however long it takes",
        )
    ]
    assert order == sorted(order), lines
    health_at, _, running = arrivals[order[2]]
    assert running, "the health check's line arrived only after bb had ended"
    assert ended - health_at > 10, f"health's line came {ended - health_at:.1f} s before the end"
    # nothing animated on a pipe, and the document alone on stdout
    assert not any("\x1b" in line or "running " in line for line in lines)
    assert json.loads(stdout)["checks"][-1]["name"] == "hello_answers"
