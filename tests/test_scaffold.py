"""Scaffolding: strict templates, no escape from the workspace, learners' edits kept."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bb.errors import ContentError, UserError
from bb.pack.manifest import Pack, load_pack
from bb.pack.scaffold import (
    MAX_TEMPLATE_BYTES,
    ScaffoldResult,
    lay_solution,
    new_project,
    read_record,
)
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
    # A link out of the pack is refused when the pack loads (test_pack); one inside it too,
    # here, where templates render: a starter is plain files.
    pack_dir = copy_mini_pack(tmp_path / "pack")
    (pack_dir / "templates" / "hello" / "lesson.md").symlink_to("../../course/lessons/hello.md")
    pack = load_pack(pack_dir)
    with pytest.raises(ContentError, match="symbolic links"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")


def test_a_symlinked_directory_in_templates_is_refused(tmp_path: Path) -> None:
    pack_dir = copy_mini_pack(tmp_path / "pack")
    (pack_dir / "templates" / "hello" / "graders").symlink_to("../../graders")
    pack = load_pack(pack_dir)
    with pytest.raises(ContentError, match="symbolic links"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def _with_template(tmp_path: Path, files: dict[str, str | bytes]) -> Pack:
    pack_dir = copy_mini_pack(tmp_path / "pack")
    for name, body in files.items():
        path = pack_dir / "templates" / "hello" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body)
    return load_pack(pack_dir)


@pytest.mark.parametrize(
    "template",
    [
        "{{ cycler.__init__.__globals__.os.popen('touch ' ~ marker).read() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__['os'].system('touch ' ~ marker) }}",
        "{% set x = images.update({'python': 'evil'}) %}{{ images.python }}",
    ],
)
def test_templates_cannot_run_code_or_reach_python(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "ran"
    pack = _with_template(
        tmp_path, {"evil.txt.jinja": template.replace("marker", repr(str(marker)))}
    )
    with pytest.raises(ContentError, match=r"evil\.txt\.jinja.*unsafe"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert not marker.exists()
    assert not (tmp_path / "ws").exists()


def test_includes_resolve_inside_the_layers_only(tmp_path: Path) -> None:
    pack = _with_template(
        tmp_path,
        {
            "partials/greeting.txt": "hello from {{ exercise.id }}",
            "main.txt.jinja": '{% include "partials/greeting.txt" %}\n',
        },
    )
    new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert (tmp_path / "ws" / "main.txt").read_text() == "hello from hello\n"


@pytest.mark.parametrize(
    "name",
    [
        "../../course/lessons/hello.md",
        "/etc/hostname",
        "../hello/../../graders/hello/test_hello.py",
    ],
)
def test_includes_cannot_leave_the_layers(tmp_path: Path, name: str) -> None:
    pack = _with_template(tmp_path, {"main.txt.jinja": f'{{% include "{name}" %}}'})
    with pytest.raises(ContentError, match=r"main\.txt\.jinja.*not a file of this exercise"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")


def test_a_huge_template_is_refused_unread(tmp_path: Path) -> None:
    pack = _with_template(tmp_path, {"big.txt.jinja": b"x" * (MAX_TEMPLATE_BYTES + 1)})
    with pytest.raises(ContentError, match=r"big\.txt\.jinja: the template is 1,048,577 bytes"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_a_huge_include_is_refused(tmp_path: Path) -> None:
    pack = _with_template(
        tmp_path,
        {"big.bin": b"x" * (MAX_TEMPLATE_BYTES + 1), "main.txt.jinja": '{% include "big.bin" %}'},
    )
    with pytest.raises(ContentError, match=r"big\.bin: the template is"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")


@pytest.mark.parametrize(
    "template",
    [
        # 10 MB of output from 80 bytes of template.
        "{% for i in range(100000) %}{% for j in range(10) %}xxxxxxxxxx{% endfor %}{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{{ 7 ** 100000000 }}",
    ],
)
def test_output_is_bounded(tmp_path: Path, template: str) -> None:
    pack = _with_template(tmp_path, {"bomb.txt.jinja": template})
    started = time.monotonic()
    with pytest.raises(ContentError, match=r"bomb\.txt\.jinja"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert time.monotonic() - started < 10
    assert not (tmp_path / "ws").exists()


def test_a_template_runtime_error_names_the_file(tmp_path: Path) -> None:
    pack = _with_template(tmp_path, {"div.txt.jinja": "{{ 1 // 0 }}"})
    with pytest.raises(ContentError, match=r"div\.txt\.jinja: rendering failed: ZeroDivision"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")


def test_an_old_staging_directory_is_not_touched(tmp_path: Path) -> None:
    # Someone's directory that happens to be named like bb's staging directory is theirs.
    theirs = tmp_path / ".ws.bb-partial"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    pack = load_pack(MINI_PACK)
    new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert (theirs / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ws.bb-partial", "ws"]


def test_a_start_that_loses_the_race_finds_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another bb publishes the same project while this one renders: no crash, no overwrite."""
    import bb.pack.scaffold

    pack = load_pack(MINI_PACK)
    exercise = pack.exercise("hello")
    real_render = bb.pack.scaffold.render_layers
    winner: list[ScaffoldResult] = []
    racing: list[bool] = []

    def render_while_another_bb_wins(*args: Any) -> list[str]:
        if not racing:
            racing.append(True)
            winner.append(new_project(pack, exercise, tmp_path / "ws"))
            (tmp_path / "ws" / "answers.py").write_text("# the winner's\n")
        return real_render(*args)

    monkeypatch.setattr(bb.pack.scaffold, "render_layers", render_while_another_bb_wins)
    loser = new_project(pack, exercise, tmp_path / "ws")
    assert winner[0].created and not loser.created
    assert (tmp_path / "ws" / "answers.py").read_text() == "# the winner's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_losing_the_race_to_another_exercise_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bb.pack.scaffold

    pack = load_pack(MINI_PACK)
    real_render = bb.pack.scaffold.render_layers
    racing: list[bool] = []

    def render_while_another_exercise_wins(*args: Any) -> list[str]:
        if not racing:
            racing.append(True)
            new_project(pack, pack.exercise("slow"), tmp_path / "ws")
        return real_render(*args)

    monkeypatch.setattr(bb.pack.scaffold, "render_layers", render_while_another_exercise_wins)
    with pytest.raises(UserError, match="already holds the project of exercise 'slow'"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_the_built_in_course_is_recorded_by_name(tmp_path: Path) -> None:
    pack = load_pack(ROOT)
    new_project(pack, pack.exercise("rest-crud"), tmp_path / "ws")
    assert "pack: builtin\n" in (tmp_path / "ws" / ".bb" / "project.yaml").read_text()
    assert read_record(tmp_path / "ws").pack == ROOT


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


def test_a_template_that_hoards_memory_is_stopped(tmp_path: Path) -> None:
    # Doubling a string 40 times asks for a terabyte; the sandbox alone would let it try.
    pack = _with_template(
        tmp_path,
        {
            "hoard.txt.jinja": '{% set ns = namespace(s="x") %}'
            "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
        },
    )
    with pytest.raises(ContentError, match=r"hoard\.txt\.jinja: rendering needs more than"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_a_template_that_spins_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bb.pack.scaffold

    monkeypatch.setattr(bb.pack.scaffold, "RENDER_CPU_SECONDS", 1)
    pack = _with_template(
        tmp_path,
        {
            "spin.txt.jinja": "{% for i in range(100000) %}{% for j in range(100000) %}"
            "{% endfor %}{% endfor %}"
        },
    )
    started = time.monotonic()
    with pytest.raises(ContentError, match=r"spin\.txt\.jinja: rendering took more than 1 s"):
        new_project(pack, pack.exercise("hello"), tmp_path / "ws")
    assert time.monotonic() - started < 10
    assert not (tmp_path / "ws").exists()


def test_dev_check_runs_no_code_from_templates(tmp_path: Path) -> None:
    from bb.errors import ExitCode
    from tests.conftest import run_bb

    marker = tmp_path / "ran"
    _with_template(
        tmp_path,
        {"evil.txt.jinja": f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}') }}}}"},
    )
    result = run_bb(
        "dev",
        "check",
        "--pack",
        tmp_path / "pack",
        "-e",
        "hello",
        "--no-grade",
        expect=ExitCode.CONTENT,
    )
    shown = result.stdout.replace("\n", "")
    assert "evil.txt.jinja" in shown and "unsafe" in shown
    assert not marker.exists()
