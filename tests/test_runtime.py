"""The pure parts of the runtime: who owns a leftover, and port allocation."""

from __future__ import annotations

import socket
import subprocess
import sys

from bb.runtime import _owner_alive, _owner_token, free_port


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


def test_a_builds_containers_are_never_swept() -> None:
    from bb.runtime import GRADE, MANAGED, OWNER, _orphan

    # A build's intermediate container carries the image's labels, and no grade's.
    assert not _orphan({MANAGED: "1", "io.bb.app": "1", "io.bb.workspace": "/ws"})
    assert _orphan({MANAGED: "1", GRADE: "g", OWNER: f"{socket.gethostname()}:999999999"})
    assert not _orphan({MANAGED: "1", GRADE: "g", OWNER: _owner_token()})
