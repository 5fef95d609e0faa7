"""Isolation levels on a real engine.

Under strict isolation the graded app must reach neither this machine nor anything beyond it,
run as a uid other than 0 on a read-only root with no capabilities, and its build must have no
network; yet graders still reach it, and its services, through ports on 127.0.0.1. The probe
exercise (tests/fixtures/isolation) reports each of these from inside the app. The same probe
under standard isolation shows that it does detect each one.

Traffic goes only to this machine (a listener the test opens on 0.0.0.0) and the grade's own
containers: the app's DNS lookup is tried only once its way out is proven dead.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bb.errors import ExitCode
from bb.pack.manifest import load_pack
from bb.pack.scaffold import lay_solution
from tests.conftest import MINI_PACK, ROOT, _docker_required, run_bb
from tests.helpers import copy_mini_pack

pytestmark = pytest.mark.docker

PROBE = ROOT / "tests" / "fixtures" / "isolation"
PROBE_CHECKS = {
    "runs_as_non_root",
    "root_filesystem_is_read_only",
    "holds_no_capabilities",
    "cannot_reach_this_machine",
    "names_outside_do_not_resolve",
    "build_had_no_network",
}


@pytest.fixture(scope="session")
def relay(engine: Any) -> Any:
    """The engine, with bb's relay image built (by `bb setup`)."""
    from bb.stack.images import relay_image_tag

    if not engine.has_image(relay_image_tag()):
        message = f"bb's relay image is missing ({relay_image_tag()}): run `bb setup`"
        if _docker_required():
            pytest.fail(message)
        pytest.skip(message)
    return engine


class HostListener:
    """A TCP listener on every address of this machine, counting who connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[HostListener]:
    opened = HostListener()
    yield opened
    opened.close()


def _docker0_address() -> str:
    """This machine's address on Docker's default bridge: what builds and plain containers
    reach the host through."""
    import ipaddress

    import docker

    client = docker.from_env()
    try:
        config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    finally:
        client.close()
    if "Gateway" in config:
        return str(config["Gateway"])
    # Unless the engine is told otherwise (bip), docker0 takes the subnet's first address.
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def _probe_workspace(tmp_path: Path, listener: HostListener, *, build_network: bool) -> Path:
    """A copy of the mini pack with the probe exercise added, and a project of it aimed at
    ``listener``."""
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = yaml.safe_load((PROBE / "exercise.yaml").read_text())
    if build_network:
        manifest["app"]["build_network"] = True
    (pack / "exercises" / "probe").mkdir()
    (pack / "exercises" / "probe" / "exercise.yaml").write_text(yaml.safe_dump(manifest))
    shutil.copytree(PROBE / "template", pack / "templates" / "probe")
    shutil.copytree(PROBE / "grader", pack / "graders" / "probe")
    (pack / "course" / "lessons" / "probe.md").write_text("# probe\n\nA lesson.\n")
    course_file = pack / "course" / "course.yaml"
    course = yaml.safe_load(course_file.read_text())
    course["modules"].append({"id": "fence", "title": "Fence", "exercises": ["probe"]})
    course_file.write_text(yaml.safe_dump(course))

    workspace = tmp_path / "probe"
    run_bb("start", "probe", "--pack", pack, "--dir", workspace)
    target = {"addresses": [_docker0_address()], "port": listener.port}
    (workspace / "probe-target.json").write_text(json.dumps(target))
    return workspace


def _grade(workspace: Path, *args: str, expect: int, env: dict[str, str] | None = None) -> Any:
    result = run_bb("grade", "--json", *args, cwd=workspace, expect=expect, env=env)
    return json.loads(result.stdout)


def _statuses(document: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in document["checks"]}


def test_strict_fences_the_app_in(
    tmp_path: Path, listener: HostListener, relay: Any, no_leftovers: Any
) -> None:
    workspace = _probe_workspace(tmp_path, listener, build_network=False)
    document = _grade(workspace, "--isolation", "strict", expect=ExitCode.OK)
    assert document["isolation"] == "strict"
    statuses = _statuses(document)
    assert {name: statuses.get(name) for name in PROBE_CHECKS} == dict.fromkeys(
        PROBE_CHECKS, "passed"
    ), json.dumps(document["checks"], indent=1)
    assert listener.accepted == 0


def test_the_probe_sees_what_standard_allows(
    tmp_path: Path, listener: HostListener, engine: Any, no_leftovers: Any
) -> None:
    """The contrast: each probe does detect what it guards against."""
    workspace = _probe_workspace(tmp_path, listener, build_network=False)
    document = _grade(workspace, expect=ExitCode.CHECKS_FAILED)
    assert document["isolation"] == "standard"
    statuses = _statuses(document)
    assert statuses.get("app") == "passed", json.dumps(document["checks"][:3], indent=1)
    assert {name: statuses.get(name) for name in PROBE_CHECKS} == dict.fromkeys(
        PROBE_CHECKS, "failed"
    ), json.dumps(document["checks"], indent=1)
    assert listener.accepted >= 2  # the build, and the app


def test_an_exercise_may_allow_its_build_the_network(
    tmp_path: Path, listener: HostListener, relay: Any, no_leftovers: Any
) -> None:
    workspace = _probe_workspace(tmp_path, listener, build_network=True)
    document = _grade(workspace, expect=ExitCode.CHECKS_FAILED, env={"BB_ISOLATION": "strict"})
    assert document["isolation"] == "strict"
    failed = {name for name, status in _statuses(document).items() if status != "passed"}
    assert failed == {"build_had_no_network"}  # the app itself stays fenced in
    assert listener.accepted == 1  # the build's connection only


def test_hello_passes_under_strict_restart_included(
    tmp_path: Path, relay: Any, no_leftovers: Any
) -> None:
    workspace = tmp_path / "hello"
    run_bb("start", "hello", "--pack", MINI_PACK, "--dir", workspace)
    lay_solution(load_pack(MINI_PACK).exercise("hello"), workspace)
    document = _grade(workspace, "--isolation", "strict", expect=ExitCode.OK)
    assert document["isolation"] == "strict"
    assert _statuses(document) == dict.fromkeys(
        ("build", "app", "health", "hello", "restart_keeps_serving"), "passed"
    )


def test_rest_crud_solution_passes_under_strict(
    tmp_path: Path, relay: Any, no_leftovers: Any
) -> None:
    """Postgres behind the relay: migrations, the db fixture, a restart of the app."""
    workspace = tmp_path / "rest-crud"
    run_bb("start", "rest-crud", "--dir", workspace)
    lay_solution(load_pack(ROOT).exercise("rest-crud"), workspace)
    document = _grade(workspace, "--isolation", "strict", expect=ExitCode.OK)
    assert document["isolation"] == "strict"
    statuses = _statuses(document)
    assert set(statuses.values()) == {"passed"}, json.dumps(document["checks"], indent=1)
    assert {"services", "migrate", "app", "posts_survive_restart"} <= set(statuses)


def test_strict_without_the_relay_image_says_to_run_setup(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bb.errors import EnvironmentProblem
    from bb.stack import images
    from bb.stack.lifecycle import require_relay

    monkeypatch.setattr(images, "relay_image_tag", lambda: "bb/relay:never-built")
    with pytest.raises(EnvironmentProblem) as raised:
        require_relay(engine)
    assert "bb/relay:never-built" in raised.value.message
    assert "bb setup" in (raised.value.hint or "")


def test_dev_check_proves_a_pack_under_strict(relay: Any, no_leftovers: Any) -> None:
    result = run_bb(
        "dev", "check", "--pack", MINI_PACK, "-e", "hello", "--isolation", "strict",
        "--variant", "forgets-hello",
    )  # fmt: skip
    assert "✓ hello" in result.stdout
    assert "✓ wrong variant forgets-hello: caught by hello" in result.stdout


def test_a_build_that_needs_the_network_fails_under_strict_and_says_why(
    tmp_path: Path, listener: HostListener, relay: Any, no_leftovers: Any
) -> None:
    workspace = tmp_path / "hello"
    run_bb("start", "hello", "--pack", MINI_PACK, "--dir", workspace)
    dockerfile = workspace / "Dockerfile"
    reach = f"import socket; socket.create_connection(({_docker0_address()!r}, {listener.port}))"
    dockerfile.write_text(
        dockerfile.read_text().replace("COPY", f'RUN python -c "{reach}"\nCOPY', 1)
    )
    document = _grade(workspace, "--isolation", "strict", expect=ExitCode.CHECKS_FAILED)
    build = next(check for check in document["checks"] if check["name"] == "build")
    assert build["status"] == "failed"
    assert "Network is unreachable" in build["log"]
    assert "no network" in build["hint"]
    assert listener.accepted == 0


def test_containers_of_bb_images_that_no_grade_started_are_not_swept(relay: Any) -> None:
    """A build's RUN steps run in containers of the course images, whose labels they inherit;
    a concurrent bb command's sweep must not kill them (nor a learner's own `docker run`)."""
    import docker

    from bb.stack.images import relay_image_tag

    client = docker.from_env()
    container = client.containers.create(relay_image_tag(), ["1=app:1"])
    try:
        assert "io.bb.managed" in (container.labels or {})  # inherited from the image
        relay.sweep()
        container.reload()  # raises NotFound if the sweep removed it
        assert container.name not in relay.managed_objects()
    finally:
        container.remove(force=True)
        client.close()
