"""Pack loading: strict, versioned manifests whose errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bb.errors import ContentError, UserError
from bb.pack.manifest import load_pack
from tests.conftest import MINI_PACK, ROOT
from tests.helpers import copy_mini_pack, edit_yaml


def test_builtin_course_loads_in_course_order() -> None:
    pack = load_pack(ROOT)
    assert list(pack.exercises) == [
        "http-from-scratch",
        "rest-crud",
        "pagination",
        "schema-and-migrations",
        "transactions",
        "indexing",
        "n-plus-one",
        "passwords-and-jwt",
        "authorization",
        "sessions-refresh-revocation",
        "rate-limiting",
        "cache-aside",
        "http-caching-and-etags",
    ]
    assert pack.module_of("http-from-scratch").id == "http-apis"
    assert pack.module_of("pagination").id == "http-apis"
    assert pack.module_of("n-plus-one").id == "databases"
    assert pack.module_of("transactions").id == "databases"
    assert pack.module_of("authorization").id == "auth-security"
    assert pack.module_of("rate-limiting").id == "auth-security"
    assert pack.module_of("cache-aside").id == "performance-caching"
    assert pack.module_of("http-caching-and-etags").id == "performance-caching"


def test_image_tags_are_content_addressed() -> None:
    # The mini pack ships byte-for-byte copies of the built-in recipes: one image each.
    for name in ("python", "postgres", "redis", "mock-origin"):
        assert load_pack(MINI_PACK).image_tag(name) == load_pack(ROOT).image_tag(name), name
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
        {"services": {"db": {"image": "mysql", "port": 5432, "ready": {"tcp": True}}}},
    )
    with pytest.raises(ContentError, match="services.db.image: 'mysql' is not an image"):
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


def _outside(tmp_path: Path) -> Path:
    """A directory beside the pack, with a file someone might want to copy."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM scratch\n")
    (outside / "secret.txt").write_text("not the pack's\n")
    return outside


@pytest.mark.parametrize("absolute", [False, True])
def test_template_layers_must_stay_inside_the_pack(tmp_path: Path, absolute: bool) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    outside = _outside(tmp_path)
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    name = str(outside) if absolute else "../../outside"
    edit_yaml(manifest, {"template": ["hello", name]})
    with pytest.raises(ContentError) as caught:
        load_pack(pack)
    assert caught.value.message.startswith(f"{manifest}: template[1]: {name!r}")
    assert ("absolute path" if absolute else "leads outside the pack") in caught.value.message


@pytest.mark.parametrize("absolute", [False, True])
def test_grader_suites_must_stay_inside_the_pack(tmp_path: Path, absolute: bool) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    outside = _outside(tmp_path)
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    name = str(outside) if absolute else "../../outside"
    edit_yaml(manifest, {"grader": {"suite": name}})
    with pytest.raises(ContentError, match=rf"^{manifest}: grader\.suite: '{name}'"):
        load_pack(pack)


@pytest.mark.parametrize("absolute", [False, True])
def test_image_recipes_must_stay_inside_the_pack(tmp_path: Path, absolute: bool) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    outside = _outside(tmp_path)
    course = pack / "course" / "course.yaml"
    name = str(outside) if absolute else "../../outside"
    edit_yaml(course, {"images": {"python": {"recipe": name}}})
    with pytest.raises(ContentError, match=rf"^{course}: images\.python\.recipe: '{name}'"):
        load_pack(pack)


def test_a_named_directory_that_is_a_link_out_of_the_pack_is_refused(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    outside = _outside(tmp_path)
    (pack / "templates" / "elsewhere").symlink_to(outside)
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"template": ["hello", "elsewhere"]})
    with pytest.raises(ContentError, match=r"template\[1\]: 'elsewhere' leads outside the pack"):
        load_pack(pack)


@pytest.mark.parametrize(
    "where",
    ["exercises/hello/solution/secret.txt", "course/images/python/secret.txt", "graders/hello/x"],
)
def test_any_link_out_of_the_pack_is_refused(tmp_path: Path, where: str) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    outside = _outside(tmp_path)
    (pack / where).symlink_to(outside / "secret.txt")
    with pytest.raises(ContentError, match=rf"{pack / where}: a symbolic link leading outside"):
        load_pack(pack)


def test_links_inside_the_pack_are_allowed(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    (pack / "graders" / "hello" / "lesson.md").symlink_to("../../course/lessons/hello.md")
    assert load_pack(pack).exercise("hello").id == "hello"


def test_special_files_are_refused(tmp_path: Path) -> None:
    import os

    pack = copy_mini_pack(tmp_path / "pack")
    os.mkfifo(pack / "templates" / "hello" / "pipe")
    with pytest.raises(ContentError, match=r"templates/hello/pipe: not a regular file"):
        load_pack(pack)


def test_dev_check_refuses_a_pack_that_reaches_outside(tmp_path: Path) -> None:
    from bb.errors import ExitCode
    from tests.conftest import run_bb

    pack = copy_mini_pack(tmp_path / "pack")
    _outside(tmp_path)
    edit_yaml(pack / "exercises" / "hello" / "exercise.yaml", {"template": ["../../outside"]})
    result = run_bb("dev", "check", "--pack", pack, "--no-grade", expect=ExitCode.CONTENT)
    assert "template[0]: '../../outside' leads outside the pack" in result.stderr
    assert "sound" not in result.stdout


@pytest.mark.parametrize(
    ("limits", "field", "message"),
    [
        ({"memory": "1k"}, "app.limits.memory", "1k is too little memory"),
        ({"memory": "31m"}, "app.limits.memory", "31m is too little memory"),
        ({"cpus": 0.01}, "app.limits.cpus", "greater than or equal to 0.1"),
        ({"pids": 1}, "app.limits.pids", "greater than or equal to 16"),
    ],
)
def test_limits_below_what_can_run_are_refused(
    tmp_path: Path, limits: dict[str, object], field: str, message: str
) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"port": 8080, "limits": limits}})
    with pytest.raises(ContentError) as caught:
        load_pack(pack)
    assert caught.value.message.startswith(f"{manifest}: {field}: ")
    assert message in caught.value.message


def test_limits_at_the_minimums_are_accepted(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    manifest = pack / "exercises" / "hello" / "exercise.yaml"
    edit_yaml(manifest, {"app": {"port": 8080, "limits": {"memory": "32m", "cpus": 0.1}}})
    assert load_pack(pack).exercise("hello").app.limits.memory == "32m"


def test_a_pack_is_known_by_where_it_lives_not_by_its_id(tmp_path: Path) -> None:
    builtin = load_pack(ROOT).identity
    assert (builtin.where, builtin.id, builtin.builtin) == ("builtin", "core", True)
    impostor_dir = copy_mini_pack(tmp_path / "pack")
    edit_yaml(impostor_dir / "course" / "course.yaml", {"id": "core", "title": "Backend Bootcamp"})
    impostor = load_pack(impostor_dir).identity
    assert impostor.id == builtin.id and impostor.title == builtin.title
    assert impostor.where == str(impostor_dir.resolve()) and not impostor.builtin


def test_the_digest_follows_the_content(tmp_path: Path) -> None:
    pack = copy_mini_pack(tmp_path / "pack")
    before = load_pack(pack).identity.digest
    assert before == load_pack(MINI_PACK).identity.digest  # same bytes, same digest
    assert len(before) == 64
    (pack / "graders" / "hello" / "__pycache__").mkdir()
    (pack / "graders" / "hello" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert load_pack(pack).identity.digest == before  # caches are not content
    grader = pack / "graders" / "hello" / "test_hello.py"
    grader.write_text(grader.read_text() + "\n# changed\n")
    assert load_pack(pack).identity.digest != before
