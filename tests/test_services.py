"""Shared state across copies of an app: replicas, Redis and the mock origin, on a real engine.

The mini course's `shared` exercise runs two copies of a small app over the course's Redis,
reading through the course's mock origin. Its grader reaches each copy by its own address,
uses the `redis` fixture, steers the origin, and stops and starts Redis in a check; it also
leaves a key behind, so a warm grade passes only if Redis was wiped in between.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ContentError, ExitCode
from bb.pack.manifest import Readiness, load_pack
from bb.pack.scaffold import lay_solution
from bb.stack.engine import WARM_ROLE, WARM_WORKSPACE
from bb.stack.probes import probe
from tests.conftest import MINI_PACK, run_bb
from tests.helpers import copy_mini_pack, edit_yaml


def _shared(tmp_path: Path, *, solved: bool = True) -> Path:
    workspace = tmp_path / "shared"
    run_bb("start", "shared", "--pack", MINI_PACK, "--dir", workspace)
    if solved:
        lay_solution(load_pack(MINI_PACK).exercise("shared"), workspace)
    return workspace


def _grade(workspace: Path, *args: str, expect: int = ExitCode.OK) -> dict[str, Any]:
    result = run_bb("grade", "--json", *args, cwd=workspace, expect=expect)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _statuses(document: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in document["checks"]}


@pytest.mark.docker
def test_two_copies_share_redis_and_a_warm_redis_starts_empty(
    tmp_path: Path, no_leftovers: Any
) -> None:
    workspace = _shared(tmp_path)
    first = _grade(workspace)
    assert set(_statuses(first).values()) == {"passed"}
    warm = no_leftovers.labelled(f"{WARM_WORKSPACE}={workspace.resolve()}")
    assert [labels.get(WARM_ROLE) for _, _, labels in warm] == ["grade", "grade"], (
        "Redis and the origin (which has a reset endpoint) stay warm; the app does not"
    )
    # The first grade stopped and started Redis, left a key behind and changed the origin's
    # latency: the second grade's fresh_* checks fail unless both were wiped, and it reuses
    # the containers.
    second = _grade(workspace)
    assert _statuses(second)["fresh_redis"] == _statuses(second)["fresh_origin"] == "passed"
    assert no_leftovers.labelled(f"{WARM_WORKSPACE}={workspace.resolve()}") == warm
    run_bb("down", cwd=workspace)


@pytest.mark.docker
def test_the_starter_fails_exactly_where_state_lives_in_one_process(
    tmp_path: Path, no_leftovers: Any
) -> None:
    document = _grade(_shared(tmp_path, solved=False), "--cold", expect=ExitCode.CHECKS_FAILED)
    failed = {name for name, status in _statuses(document).items() if status != "passed"}
    assert failed == {"shared_counter", "redis_stop_and_start"}


@pytest.mark.docker
def test_replicas_and_services_are_reachable_under_strict_isolation(
    tmp_path: Path, no_leftovers: Any
) -> None:
    document = _grade(_shared(tmp_path), "--isolation", "strict")
    assert set(_statuses(document).values()) == {"passed"}


@pytest.mark.parametrize("replicas", [0, 9])
def test_replicas_are_bounded(tmp_path: Path, replicas: int) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "shared" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"replicas": replicas}})
    with pytest.raises(ContentError) as caught:
        load_pack(pack)
    assert f"{manifest}: app.replicas" in caught.value.message


def test_a_redis_probe_is_one_probe() -> None:
    with pytest.raises(ValueError, match="exactly one of tcp, http, postgres or redis"):
        Readiness.model_validate({"redis": {}, "tcp": True})


@pytest.fixture
def resp_server() -> Iterator[tuple[int, list[bytes]]]:
    """A local socket that answers every command with the next queued RESP reply."""
    replies: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"".join(replies[: data.count(b"\r\n")]))

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], replies
    listener.close()


@pytest.mark.parametrize(
    ("password", "replies", "ready"),
    [
        (None, [b"+PONG\r\n"], True),
        (None, [b"-LOADING Redis is loading the dataset in memory\r\n"], False),
        ("s3cret", [b"+OK\r\n", b"+PONG\r\n"], True),
        ("wrong", [b"-WRONGPASS invalid password\r\n", b"-NOAUTH Authentication required\r\n"],
         False),
    ],
)  # fmt: skip
def test_the_redis_probe_waits_for_pong(
    resp_server: tuple[int, list[bytes]], password: str | None, replies: list[bytes], ready: bool
) -> None:
    port, queued = resp_server
    queued[:] = replies
    reason = probe(Readiness.model_validate({"redis": {"password": password}}), "127.0.0.1", port)
    assert (reason is None) == ready, reason
    if not ready:
        assert "PING" in str(reason)


def test_secrets_are_drawn_anew_for_every_stack(tmp_path: Path) -> None:
    from bb.stack.lifecycle import ProjectStack

    pack = load_pack(MINI_PACK)
    exercise = pack.exercise("shared")

    def drawn() -> str:
        # No engine is needed to make a stack's plan, only to run it.
        stack = ProjectStack(pack, exercise, tmp_path, engine=None, grade_id="g")  # type: ignore[arg-type]
        return stack.app_environment["SHARED_SECRET"]

    first, second = drawn(), drawn()
    assert len(first) == 64 and first != second


def test_a_secret_must_be_an_environment_variable_name(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "shared" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"secrets": ["JWT SECRET"]}})
    with pytest.raises(ContentError) as caught:
        load_pack(pack)
    assert f"{manifest}: app.secrets.0" in caught.value.message


@pytest.mark.docker
def test_bb_up_runs_every_copy_of_the_app_on_its_own_port(
    tmp_path: Path, no_leftovers: Any
) -> None:
    import httpx

    workspace = _shared(tmp_path)
    shown = run_bb("up", cwd=workspace).stdout
    urls = [word for word in shown.split() if word.startswith("http://127.0.0.1:")]
    copies = {httpx.get(f"{url}/whoami").json().get("replica") for url in set(urls)}
    assert copies - {None} == {"1", "2"}, shown
    assert "redis://127.0.0.1:" in shown, "Redis is shown by its URL"
    run_bb("down", cwd=workspace)
    assert no_leftovers.labelled(f"{WARM_WORKSPACE}={workspace.resolve()}") == []


def test_a_redis_password_cannot_carry_a_second_command() -> None:
    with pytest.raises(ValueError, match="password"):
        Readiness.model_validate({"redis": {"password": "x\r\nFLUSHALL"}})
