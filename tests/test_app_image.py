"""Apps without a Dockerfile (``app.image`` + ``app.command``), and the stack's one-off
commands, stop and start, on a real engine through the mini course's tools exercise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ContentError, ExitCode
from bb.pack.manifest import load_pack
from bb.pack.scaffold import lay_solution
from bb.stack.lifecycle import generated_dockerfile
from tests.conftest import MINI_PACK, run_bb
from tests.helpers import copy_mini_pack, edit_yaml


def test_image_needs_a_command(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "tools" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"image": "python", "port": 8080}})
    with pytest.raises(ContentError, match=r"exercise\.yaml: app: .*give image and command"):
        load_pack(pack)


def test_an_unknown_bare_image_name_is_refused(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "tools" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"image": "pyhton", "command": ["sh", "run.sh"]}})
    with pytest.raises(ContentError, match=r"app\.image: 'pyhton' is not an image of this"):
        load_pack(pack)


def test_the_generated_dockerfile_copies_the_project_and_runs_the_command() -> None:
    text = generated_dockerfile("bb/python:abc", ["sh", "run.sh"])
    assert text.splitlines() == [
        "FROM bb/python:abc",
        "WORKDIR /app",
        "COPY . /app",
        'CMD ["sh", "run.sh"]',
    ]


@pytest.mark.docker
def test_an_app_without_dockerfile_is_graded_and_stack_tools_work(
    tmp_path: Path, no_leftovers: Any
) -> None:
    workspace = tmp_path / "tools"
    run_bb("start", "tools", "--pack", MINI_PACK, "--dir", workspace)
    assert not (workspace / "Dockerfile").exists()

    starter = json.loads(
        run_bb("grade", "--json", cwd=workspace, expect=ExitCode.CHECKS_FAILED).stdout
    )
    statuses = {c["name"]: c["status"] for c in starter["checks"]}
    # Only the learner's TODO fails: the image builds, and the stack tools work on a starter.
    assert statuses.pop("hello") == "failed"
    assert set(statuses.values()) == {"passed"}, starter["checks"]
    assert "bb/python:" in next(c for c in starter["checks"] if c["name"] == "build")["description"]

    lay_solution(load_pack(MINI_PACK).exercise("tools"), workspace)
    solved = json.loads(run_bb("grade", "--json", cwd=workspace).stdout)
    assert {c["name"] for c in solved["checks"]} >= {
        "build",
        "app",
        "hello",
        "files_run_without_a_dockerfile",
        "run_has_the_app_environment_and_exit_code",
        "run_is_on_the_grade_network",
        "stop_then_start",
        "pause_then_unpause",
        "a_missing_command_exits_127",
    }
    assert all(c["status"] == "passed" for c in solved["checks"]), solved["checks"]
