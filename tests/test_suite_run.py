"""The grader suite's child process, without Docker: what reaches it from the environment, how
its results are held against the checks it declared, and whose fault a hang is.

The suites run for real (pytest in a child process, bb's plugin) against 127.0.0.1 ports this
test controls; only the stack is absent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ContentError, EnvironmentProblem
from bb.grading.runner import (
    HangEvidence,
    SuiteOutcome,
    _engine_faults,
    _SuiteRun,
    app_was_busy,
    grader_waits_on_network,
    suite_environment,
)
from bb.pack.manifest import load_pack
from bb.results.report import Status
from tests.conftest import MINI_PACK


def _run_suite(
    exercise: str, *, app_url: str = "http://127.0.0.1:9", seconds: float = 60.0
) -> SuiteOutcome:
    pack = load_pack(MINI_PACK)
    suite = _SuiteRun(pack, pack.exercise(exercise))
    try:
        context = {"grade_id": "t", "seed": 1, "blocked": None, "app_url": app_url}
        return suite.finish({**context, "services": {}}, time.monotonic() + seconds)
    finally:
        suite.close()


def _statuses(outcome: SuiteOutcome) -> dict[str, Status]:
    return {check.name: check.status for check in outcome.checks}


def test_the_suite_inherits_only_an_allow_list_of_the_environment(tmp_path: Path) -> None:
    caller = {
        "PATH": "/usr/bin",
        "HOME": "/home/learner",
        "LC_ALL": "C.UTF-8",
        "DOCKER_HOST": "unix:///run/docker.sock",
        "HTTPS_PROXY": "http://proxy:3128",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "NO_PROXY": "example.org",
        # Each of these could change what runs, or what counts as a pass:
        "PYTEST_ADDOPTS": "--co",
        "PYTEST_PLUGINS": "evil",
        "PYTHONSTARTUP": "/tmp/evil.py",
        "PYTHONWARNINGS": "error",
        "PYTHONINSPECT": "1",
        "PYTHONPATH": "/tmp/evil",
        "PYTHONHOME": "/tmp/evil",
        "COV_CORE_SOURCE": "x",
        "HYPOTHESIS_PROFILE": "ci",
        "PGOPTIONS": "-c statement_timeout=1",
        "BB_DEBUG": "1",
    }
    env = suite_environment(caller, tmp_path)
    assert {k: env[k] for k in ("PATH", "HOME", "LC_ALL", "DOCKER_HOST", "HTTPS_PROXY")} == {
        k: caller[k] for k in ("PATH", "HOME", "LC_ALL", "DOCKER_HOST", "HTTPS_PROXY")
    }
    assert env["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert env["NO_PROXY"].split(",")[:2] == ["example.org", "127.0.0.1"]
    assert "127.0.0.1" in env["no_proxy"]
    assert "/tmp/evil" not in env.get("PYTHONPATH", "")
    leaked = {k for k in env if k.startswith(("PYTEST_ADD", "PYTEST_PL", "COV_", "HYPOTHESIS_"))}
    assert leaked == set()
    for name in ("PYTHONSTARTUP", "PYTHONWARNINGS", "PYTHONINSPECT", "PYTHONHOME", "PGOPTIONS"):
        assert name not in env
    assert env["BB_GRADE_CONTEXT"] == str(tmp_path / "context.json")


def test_collect_only_from_the_environment_does_not_skip_the_checks(monkeypatch: Any) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "--co")
    monkeypatch.setenv("PYTEST_PLUGINS", "no_such_plugin")
    outcome = _run_suite("hello")  # nothing listens on the app's port
    assert outcome.fault is None
    assert _statuses(outcome) == {
        "health": Status.FAILED,
        "hello": Status.FAILED,
        "restart_keeps_serving": Status.FAILED,  # no app to restart
    }


def test_a_suite_that_exits_at_import_collected_nothing() -> None:
    outcome = _run_suite("exits")
    assert isinstance(outcome.fault, ContentError)
    assert "ended before it collected its checks (pytest exit 0)" in outcome.fault.message
    assert outcome.checks == []


def test_checks_a_dead_suite_never_reported_are_errors_not_passes() -> None:
    outcome = _run_suite("dies")
    assert isinstance(outcome.fault, ContentError)
    assert "no result from: dies, after_the_death" in outcome.fault.message
    assert _statuses(outcome) == {
        "health": Status.FAILED,
        "dies": Status.ERROR,
        "after_the_death": Status.ERROR,
    }


@contextlib.contextmanager
def _silent_server() -> Iterator[str]:
    """An HTTP 'app' on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()


def test_a_grader_sleeping_on_its_own_at_the_limit_is_the_courses() -> None:
    outcome = _run_suite("slow", seconds=6.0)
    assert isinstance(outcome.fault, ContentError)
    assert "the check `sleeps_too_long` was still running" in outcome.fault.message
    assert "graders/slow/test_slow.py:15 (test_sleeps_too_long)" in outcome.fault.message
    assert _statuses(outcome)["sleeps_too_long"] is Status.ERROR


def test_a_grader_waiting_on_a_silent_app_at_the_limit_is_the_learners() -> None:
    with _silent_server() as app_url:
        outcome = _run_suite("stall", app_url=app_url, seconds=6.0)
    assert outcome.fault is None
    # /health waits too (10 s client timeout, past the limit): it is the check that ran.
    statuses = _statuses(outcome)
    assert statuses["health"] is Status.FAILED
    assert statuses["hello_answers"] is Status.SKIPPED
    assert "waited on your app" in outcome.checks[0].message


def _evidence(
    frames: list[str], before: tuple[float, int] | None, after: tuple[float, int] | None
) -> HangEvidence:
    stack = [{"module": m, "file": f"{m}.py", "line": 1, "function": "f"} for m in frames]
    return HangEvidence([{"main": True, "frames": stack}], before, after, window=3.0)


def test_whose_hang_it_is() -> None:
    idle = ((1.0, 500), (1.01, 500))  # 10 ms of CPU in 3 s, nothing sent
    sleeping = _evidence(["_pytest.runner", "test_slow"], *idle)
    assert not app_was_busy(sleeping) and not grader_waits_on_network(sleeping)
    reading = _evidence(["test_stall", "httpx._client", "httpcore._backends.sync"], *idle)
    assert grader_waits_on_network(reading)
    assert app_was_busy(_evidence(["test_slow"], (1.0, 500), (1.0, 900)))  # it answered
    assert app_was_busy(_evidence(["test_slow"], (1.0, 500), (2.5, 500)))  # it spun
    assert not app_was_busy(_evidence(["test_slow"], None, None))  # no app, no counters


class _FakeEngine:
    """Only what fault mapping asks of an engine: whether it still answers."""

    def __init__(self, answers: bool) -> None:
        self._answers = answers

    def answers(self) -> bool:
        return self._answers


def _mapped(error: BaseException, *, engine_answers: bool) -> BaseException:
    with pytest.raises(BaseException) as raised, _engine_faults(_FakeEngine(engine_answers)):  # type: ignore[arg-type]
        raise error
    return raised.value


def test_engine_faults_are_environment_problems_and_bugs_stay_bugs() -> None:
    import requests
    from docker.errors import APIError

    gone = _mapped(requests.exceptions.ConnectionError("socket gone"), engine_answers=False)
    assert isinstance(gone, EnvironmentProblem)
    assert "stopped answering during the grade (socket gone)" in gone.message
    failed = _mapped(APIError("500 Server Error: no space left on device"), engine_answers=True)
    assert isinstance(failed, EnvironmentProblem)
    assert "Docker failed during the grade" in failed.message
    bug = _mapped(KeyError("oops"), engine_answers=True)
    assert isinstance(bug, KeyError)
    # With the engine gone, whatever broke on the way is the engine's doing, not the course's.
    assert isinstance(_mapped(KeyError("oops"), engine_answers=False), EnvironmentProblem)
    assert isinstance(_mapped(ContentError("x"), engine_answers=False), EnvironmentProblem)
    assert isinstance(_mapped(ContentError("x"), engine_answers=True), ContentError)


def test_a_selection_runs_only_its_checks_and_results_arrive_while_the_suite_runs(
    monkeypatch: Any,
) -> None:
    from bb.grading.runner import CheckFinished, CheckStarted, GradeEvent

    monkeypatch.setenv("PYTEST_ADDOPTS", "-k restart")  # the learner's pytest settings: no say
    pack = load_pack(MINI_PACK)
    events: list[tuple[GradeEvent, bool]] = []  # each event, and whether pytest still ran
    suite = _SuiteRun(
        pack,
        pack.exercise("hello"),
        select="hello or health",
        on_event=lambda event: events.append((event, suite.process.poll() is None)),
    )
    try:
        context = {"grade_id": "t", "seed": 1, "blocked": None, "app_url": "http://127.0.0.1:9"}
        outcome = suite.finish({**context, "services": {}}, time.monotonic() + 60)
    finally:
        suite.close()
    assert outcome.fault is None
    assert _statuses(outcome) == {"health": Status.FAILED, "hello": Status.FAILED}
    assert suite.left_out == ("restart_keeps_serving",)
    kinds = [
        (type(event).__name__, event.name if isinstance(event, CheckStarted) else event.check.name)
        for event, _ in events
    ]
    assert kinds == [
        ("CheckStarted", "health"),
        ("CheckFinished", "health"),
        ("CheckStarted", "hello"),
        ("CheckFinished", "hello"),
    ]
    # the first check's result was read while pytest was still running the second
    assert events[1][1] is True
    finished = [event.check for event, _ in events if isinstance(event, CheckFinished)]
    assert finished[1].hints[0] == "Add /hello to ROUTES in answers.py."


def test_a_selection_of_nothing_is_the_learners_usage_error() -> None:
    from bb.errors import UserError

    pack = load_pack(MINI_PACK)
    suite = _SuiteRun(pack, pack.exercise("hello"), select="goodbye")
    try:
        context = {"grade_id": "t", "seed": 1, "blocked": None, "app_url": "http://127.0.0.1:9"}
        outcome = suite.finish({**context, "services": {}}, time.monotonic() + 60)
    finally:
        suite.close()
    assert isinstance(outcome.fault, UserError)
    assert "selects none of the checks of hello" in outcome.fault.message
    assert "health, hello, restart_keeps_serving" in (outcome.fault.hint or "")
