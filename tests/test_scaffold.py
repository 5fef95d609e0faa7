"""Scaffolding: strict templates, no escape from the workspace, learners' edits kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bb.errors import ContentError, UserError
from bb.pack import load_pack
from bb.scaffold import lay_solution, new_project, read_record
from tests.conftest import MINI_PACK, ROOT
from tests.helpers import copy_mini_pack


def test_renders_jinja_and_copies_the_rest(tmp_path: Path) -> None:
    pack = load_pack(MINI_PACK)
    result = new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert result.created
    dockerfile = (tmp_path / "ws" / "Dockerfile").read_text()
    assert dockerfile.startswith(f"FROM {pack.image_tag('python')}\n")
    assert not (tmp_path / "ws" / "Dockerfile.jinja").exists()
    assert (tmp_path / "ws" / "server.py").read_bytes() == (
        MINI_PACK / "templates" / "hello" / "server.py"
    ).read_bytes()
    record = read_record(tmp_path / "ws")
    assert (record.pack, record.exercise) == (MINI_PACK, "hello")


def test_layers_override_in_order(tmp_path: Path) -> None:
    pack = load_pack(ROOT)
    exercise = pack.exercise("rest-crud")
    new_project(pack, exercise, tmp_path / "ws")
    assert (tmp_path / "ws" / "app" / "main.py").is_file()  # from fastapi-base
    assert (tmp_path / "ws" / "app" / "routes.py").is_file()  # from rest-crud


def test_existing_project_is_never_overwritten(tmp_path: Path) -> None:
    pack = load_pack(MINI_PACK)
    exercise = pack.exercise("hello")
    new_project(pack, exercise, tmp_path / "ws")
    answers = tmp_path / "ws" / "answers.py"
    answers.write_text("# my work\n")
    again = new_project(pack, exercise, tmp_path / "ws")
    assert not again.created
    assert answers.read_text() == "# my work\n"


def test_refuses_a_non_empty_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_text("mine")
    pack = load_pack(MINI_PACK)
    with pytest.raises(UserError, match="not empty"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert (tmp_path / "ws" / "notes.txt").read_text() == "mine"


def test_refuses_another_exercises_project(tmp_path: Path) -> None:
    pack = load_pack(MINI_PACK)
    new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    with pytest.raises(UserError, match="already holds the project of exercise 'hello'"):
        new_project(pack, pack.exercise("slow"), tmp_path / "ws")


def test_undefined_variable_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    pack_dir = copy_mini_pack(tmp_path / "pack")
    (pack_dir / "templates" / "hello" / "extra.txt.jinja").write_text("{{ no_such_thing }}\n")
    pack = load_pack(pack_dir)
    with pytest.raises(ContentError, match=r"extra\.txt\.jinja.*no_such_thing"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert not (tmp_path / "ws").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pack"]


def test_symlinks_in_templates_are_refused(tmp_path: Path) -> None:
    pack_dir = copy_mini_pack(tmp_path / "pack")
    (pack_dir / "templates" / "hello" / "passwd").symlink_to("/etc/passwd")
    pack = load_pack(pack_dir)
    with pytest.raises(ContentError, match="symbolic links"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")


def test_solution_is_laid_over_the_starter(tmp_path: Path) -> None:
    pack = load_pack(MINI_PACK)
    exercise = pack.exercise("hello")
    new_project(pack, exercise, tmp_path / "ws")
    lay_solution(exercise, tmp_path / "ws")
    assert '"/hello": b"hi"' in (tmp_path / "ws" / "answers.py").read_text()
    assert (tmp_path / "ws" / "server.py").is_file()


def test_damaged_record_is_a_clear_user_error(tmp_path: Path) -> None:
    pack = load_pack(MINI_PACK)
    new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    (tmp_path / "ws" / ".bb" / "project.yaml").write_text("- just a list\n")
    with pytest.raises(UserError, match="is damaged"):
        read_record(tmp_path / "ws")
