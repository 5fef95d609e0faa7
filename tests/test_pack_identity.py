"""A pack is known by where it lives: no pack can pass the built-in course by calling itself
``core``, and every command says which pack a project belongs to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bb.errors import ExitCode
from bb.pack.manifest import load_pack
from bb.pack.scaffold import lay_solution
from tests.conftest import MINI_PACK, ROOT, run_bb
from tests.helpers import copy_mini_pack, edit_yaml

#: Wide enough that no path or pack line wraps.
WIDE = {"COLUMNS": "400"}


def _impostor(tmp_path: Path) -> Path:
    """A pack that calls itself ``core`` and has a ``rest-crud`` that its solution passes."""
    pack = copy_mini_pack(tmp_path / "fake")
    edit_yaml(pack / "course" / "course.yaml", {"id": "core", "title": "Backend Bootcamp"})
    edit_yaml(
        pack / "course" / "course.yaml",
        {"modules": [{"id": "m", "title": "M", "exercises": ["rest-crud"]}]},
    )
    (pack / "exercises" / "hello").rename(pack / "exercises" / "rest-crud")
    edit_yaml(pack / "exercises" / "rest-crud" / "exercise.yaml", {"id": "rest-crud"})
    shutil.copy(
        pack / "course" / "lessons" / "hello.md", pack / "course" / "lessons" / "rest-crud.md"
    )
    return pack


def test_list_and_status_say_which_pack() -> None:
    digest = load_pack(ROOT).identity.short_digest
    listed = run_bb("list", env=WIDE).stdout
    assert f"pack: Backend Bootcamp (core) · built-in · content {digest}" in listed
    mini = load_pack(MINI_PACK).identity
    status = run_bb("status", "--pack", MINI_PACK, env=WIDE).stdout
    assert f"pack: Mini course (mini) · {MINI_PACK} · content {mini.short_digest}" in status


def test_start_of_an_impostor_pack_is_not_progress_on_the_built_in_course(
    tmp_path: Path,
) -> None:
    fake = _impostor(tmp_path)
    run_bb("start", "rest-crud", "--pack", fake, "--dir", tmp_path / "ws")
    assert f"· {fake} ·" in run_bb("status", "--pack", fake, env=WIDE).stdout
    builtin_status = run_bb("status").stdout
    assert f"0 of {len(load_pack(ROOT).exercises)} exercises passed" in builtin_status
    assert "… started" not in builtin_status


@pytest.mark.docker
def test_an_impostor_pass_does_not_pass_the_built_in_course(
    tmp_path: Path, no_leftovers: Any
) -> None:
    fake = _impostor(tmp_path)
    workspace = tmp_path / "ws"
    run_bb("start", "rest-crud", "--pack", fake, "--dir", workspace)
    lay_solution(load_pack(fake).exercise("rest-crud"), workspace)
    document = json.loads(run_bb("grade", "--json", cwd=workspace).stdout)
    assert document["passed"] is True
    identity = load_pack(fake).identity
    assert document["pack"] == {
        "id": "core",
        "title": "Backend Bootcamp",
        "where": str(fake),
        "digest": identity.digest,
    }
    assert "✓ passed" in run_bb("status", "--pack", fake).stdout
    builtin_status = run_bb("status").stdout
    assert (
        f"0 of {len(load_pack(ROOT).exercises)} exercises passed" in builtin_status
        and "passed (" not in builtin_status
    )
    # Nor does pointing a project of the built-in course at the impostor.
    run_bb("start", "transactions", "--dir", tmp_path / "real")
    record = tmp_path / "real" / ".bb" / "project.yaml"
    data = yaml.safe_load(record.read_text())
    assert data["pack"] == "builtin"
    data["pack"] = str(fake)
    record.write_text(yaml.safe_dump(data))
    run_bb("grade", cwd=tmp_path / "real", expect=ExitCode.USAGE)  # no such exercise there
    assert f"0 of {len(load_pack(ROOT).exercises)} exercises passed" in run_bb("status").stdout


@pytest.mark.parametrize("name", ["x[/]", "[red]danger[/red]", "a[bold"])
def test_paths_are_printed_as_written(tmp_path: Path, name: str) -> None:
    workspace = tmp_path / name
    first = run_bb("start", "hello", "--pack", MINI_PACK, "--dir", workspace)
    assert str(workspace) in first.stdout.replace("\n", "")
    again = run_bb("start", "hello", "--pack", MINI_PACK, "--dir", workspace)
    assert f"Your project {workspace} already exists" in again.stderr.replace("\n", "")
    status = run_bb("status", "--pack", MINI_PACK, env=WIDE)
    assert str(workspace) in status.stdout


def test_titles_are_printed_as_written(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    edit_yaml(pack / "course" / "course.yaml", {"title": "Course [/] of [red]x"})
    edit_yaml(pack / "exercises" / "hello" / "exercise.yaml", {"title": "Say [bold]hi"})
    listed = run_bb("list", "--pack", pack, env=WIDE).stdout
    assert "Course [/] of [red]x" in listed and "Say [bold]hi" in listed
    assert "Course [/] of [red]x" in run_bb("status", "--pack", pack, env=WIDE).stdout


def test_simultaneous_starts_into_one_directory(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    starts = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bb",
                "start",
                "hello",
                "--pack",
                str(MINI_PACK),
                "--dir",
                str(tmp_path / "ws"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.communicate()) for p in starts]
    assert [code for code, _ in results] == [0, 0, 0], results
    untouched = sum("already exists; bb left it untouched" in err for _, (_, err) in results)
    assert untouched >= 1 or all("ready at" in out for _, (out, _) in results)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "bb-home") == ["ws"]
    assert (tmp_path / "ws" / ".bb" / "project.yaml").is_file()


def test_status_shows_the_content_a_pass_was_earned_on() -> None:
    from rich.console import Console

    from bb.cli.views import progress_summary
    from bb.progress import ExerciseProgress

    pack = load_pack(MINI_PACK)
    earlier = "f" * 64
    done = {
        "hello": ExerciseProgress("hello", None, 1.0, 2.0, 1, passed_digest=earlier),
        "crash": ExerciseProgress("crash", None, 1.0, 2.0, 1, passed_digest=None),
        "slow": ExerciseProgress("slow", None, 1.0, 2.0, 1, passed_digest=pack.identity.digest),
    }
    console = Console(width=200, record=True, no_color=True)
    console.print(progress_summary(pack, done))
    text = console.export_text()
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "✓ passed (on content ffffffffffff; the pack has changed since)" in lines["hello"]
    assert "✓ passed (before bb kept pack versions)" in lines["crash"]
    assert "(" not in lines["slow"]
    assert f"3 of {len(pack.exercises)} exercises passed" in text
