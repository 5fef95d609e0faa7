"""`bb doctor`: each finding names its fix, and anything that blocks grading exits 3."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ExitCode
from bb.stack.engine import _probe_candidate
from tests.conftest import MINI_PACK, run_bb
from tests.helpers import copy_mini_pack


def test_an_engine_socket_that_answers_is_found(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nOK")

    threading.Thread(target=answer, daemon=True).start()
    try:
        found = _probe_candidate(f"unix://{path}", "test engine")
    finally:
        server.close()
    assert found.exists and found.reachable


def test_a_missing_socket_is_neither_there_nor_reachable(tmp_path: Path) -> None:
    found = _probe_candidate(f"unix://{tmp_path / 'nothing.sock'}", "Docker")
    assert not found.exists and not found.reachable


def test_no_engine_blocks_and_names_a_fix(tmp_path: Path) -> None:
    result = run_bb(
        "doctor", "--pack", MINI_PACK,
        env={"DOCKER_HOST": f"unix://{tmp_path / 'gone.sock'}"}, expect=ExitCode.ENVIRONMENT,
    )  # fmt: skip
    assert "✗ docker engine" in result.stdout
    assert "fix:" in result.stdout
    assert "✓ python" in result.stdout


@pytest.mark.docker
def test_a_ready_machine_passes(engine: Any) -> None:
    result = run_bb("doctor")
    assert "✓ image postgres" in result.stdout
    assert "ready to grade" in result.stdout


@pytest.mark.docker
def test_an_image_not_built_blocks_with_setup_as_the_fix(tmp_path: Path, engine: Any) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    recipe = pack / "course" / "images" / "unbuilt"
    recipe.mkdir(parents=True)
    (recipe / "Dockerfile").write_text("FROM debian:bookworm-slim\n# never built\n")
    course = pack / "course" / "course.yaml"
    course.write_text(
        course.read_text().replace(
            "python:\n", "unbuilt:\n    recipe: images/unbuilt\n  python:\n", 1
        )
    )
    result = run_bb("doctor", "--pack", pack, expect=ExitCode.ENVIRONMENT)
    assert "✗ image unbuilt" in result.stdout
    assert "bb setup" in result.stdout
