"""The runtime: who owns a leftover, port allocation, what a sweep may remove."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bb.stack.engine import MANAGED, _owner_alive, _owner_token, free_port
from tests.conftest import ROOT


def test_the_current_process_owns_its_objects() -> None:
    assert _owner_alive(_owner_token())


def test_a_finished_process_owns_nothing() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not _owner_alive(f"{socket.gethostname()}:{child.stdout.strip()}")


def test_another_hosts_objects_are_left_alone() -> None:
    assert _owner_alive("some-other-host:1")


def test_objects_without_an_owner_are_orphans() -> None:
    assert not _owner_alive("")
    assert not _owner_alive("host:notapid")


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.docker
def test_a_sweep_never_breaks_another_processs_build(tmp_path: Path, engine: Any) -> None:
    """Sweeps run at the start of every grade; a build running beside one must survive it."""
    from bb.pack.manifest import load_pack
    from bb.stack.engine import MANAGED
    from bb.stack.lifecycle import APP_IMAGE, sweep_leftovers

    tag = load_pack(ROOT).image_tag("python")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {tag}\nRUN sleep 2 && echo one > /one\nRUN sleep 2 && echo two > /two\n"
    )
    outcome: list[Any] = []
    labels = {MANAGED: "1", APP_IMAGE: "1", "io.bb.workspace": str(tmp_path)}
    build = threading.Thread(
        target=lambda: outcome.append(engine.build(tmp_path, "bb/app/sweep-race:latest",
                                                   labels=labels))
    )  # fmt: skip
    build.start()
    while build.is_alive():
        sweep_leftovers(engine)
        time.sleep(0.05)
    try:
        assert outcome[0].ok, outcome[0].log
        assert engine.has_image("bb/app/sweep-race:latest")
    finally:
        engine.remove_image("bb/app/sweep-race:latest")


@pytest.mark.docker
def test_a_sweep_spares_containers_that_only_inherit_bb_labels(engine: Any) -> None:
    """A build step's container inherits the labels of the image it is built FROM (bb's own
    images carry io.bb.managed): sweeping it would kill a build of another grade."""
    import docker

    client = docker.from_env()
    container = client.containers.run(
        "debian:bookworm-slim", ["sleep", "60"], labels={MANAGED: "1"}, detach=True
    )
    try:
        engine.sweep()
        container.reload()
        assert container.status == "running"
        assert container.name not in engine.managed_objects(orphans_only=True)
    finally:
        container.remove(force=True)
        client.close()


def test_a_builds_containers_are_never_swept() -> None:
    from bb.stack.engine import GRADE, MANAGED, OWNER, _orphan

    # A build's intermediate container carries the image's labels, and no grade's.
    assert not _orphan({MANAGED: "1", "io.bb.app": "1", "io.bb.workspace": "/ws"})
    assert _orphan({MANAGED: "1", GRADE: "g", OWNER: f"{socket.gethostname()}:999999999"})
    assert not _orphan({MANAGED: "1", GRADE: "g", OWNER: _owner_token()})
