"""Pack loading: strict, versioned manifests whose errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bb.errors import ContentError, UserError
from bb.pack import load_pack
from tests.conftest import MINI_PACK, ROOT
from tests.helpers import copy_mini_pack, edit_yaml


def test_builtin_course_loads_in_course_order() -> None:
    pack = load_pack(ROOT)
    assert list(pack.exercises) == ["rest-crud", "schema-and-migrations", "transactions"]
    assert pack.module_of("transactions").id == "databases"


def test_image_tags_are_content_addressed() -> None:
    # The mini pack reuses the built-in Python recipe, so both name one image.
    assert load_pack(MINI_PACK).image_tag("python") == load_pack(ROOT).image_tag("python")
    assert load_pack(ROOT).image_tag("python") != load_pack(ROOT).image_tag("postgres")


def test_unknown_key_names_file_and_field(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"port": 8080, "colour": "blue"}})
    with pytest.raises(ContentError) as caught:
        load_pack(pack)
    assert f"{manifest}: app.colour: unknown key" in caught.value.message


def test_wrong_type_names_the_dotted_path(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"grader": {"suite": "hello", "timeout": "soon"}})
    with pytest.raises(ContentError, match=r"exercise\.yaml: grader\.timeout: "):
        load_pack(pack)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    edit_yaml(pack / "course" / "course.yaml", {"format_version": 2})
    with pytest.raises(ContentError, match="format_version: unsupported format_version"):
        load_pack(pack)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    manifest.write_text("format_version: 1\nid: [unclosed\n")
    with pytest.raises(ContentError, match=r"exercise\.yaml:\d+: not valid YAML"):
        load_pack(pack)


def test_readiness_needs_exactly_one_probe(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"ready": {"tcp": True, "http": {"path": "/"}}}})
    with pytest.raises(ContentError, match="app.ready: Value error, give exactly one"):
        load_pack(pack)


def test_listed_exercise_without_manifest(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    course = pack / "course" / "course.yaml"
    edit_yaml(course, {"modules": [{"id": "m", "title": "M", "exercises": ["hello", "ghost"]}]})
    with pytest.raises(ContentError, match="lists 'ghost'"):
        load_pack(pack)


def test_missing_grader_directory(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    edit_yaml(pack / "exercises" / "hello" / "exercise.yaml", {"grader": {"suite": "nowhere"}})
    with pytest.raises(ContentError, match="grader.suite: no directory graders/nowhere"):
        load_pack(pack)


def test_unknown_course_image_is_named(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    edit_yaml(
        pack / "exercises" / "hello" / "exercise.yaml",
        {"services": {"db": {"image": "postgres", "port": 5432, "ready": {"tcp": True}}}},
    )
    with pytest.raises(ContentError, match="services.db.image: 'postgres' is not an image"):
        load_pack(pack)


def test_not_a_pack(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="is not an exercise pack"):
        load_pack(tmp_path)


def test_unknown_exercise_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no exercise called 'nope'"):
        load_pack(ROOT).exercise("nope")


def test_wrong_variants_need_their_directory(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"wrong": {"says-bye": {"mistake": "answers bye", "fails": ["hello"]}}})
    with pytest.raises(ContentError, match=r"wrong\.says-bye: no directory wrong/says-bye"):
        load_pack(pack)
    (pack / "exercises" / "hello" / "wrong" / "says-bye").mkdir(parents=True)
    variant = load_pack(pack).exercise("hello").wrong["says-bye"]
    assert variant.fails == ["hello"]
