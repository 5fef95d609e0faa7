"""Scaffolding: render an exercise's template layers into a learner's workspace.

Only ``*.jinja`` files are rendered (the suffix is stripped); everything else is copied byte for
byte. Undefined variables are errors, and no file may land outside the workspace. Every
workspace gets a record file saying which pack and exercise it belongs to, so that ``bb grade``
needs no arguments.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import yaml

from bb import __version__
from bb.errors import ContentError, UserError
from bb.pack import Exercise, Pack
from bb.paths import RECORD_FILE

RECORD_HEADER = "# Managed by bb — do not edit. It says which exercise this project is.\n"

#: Never copied from a template, whatever the author left there.
_IGNORED = {"__pycache__", ".pytest_cache", ".DS_Store"}


@dataclasses.dataclass(frozen=True)
class Record:
    """The contents of a workspace's record file."""

    pack: Path
    exercise: str
    bb_version: str


@dataclasses.dataclass(frozen=True)
class ScaffoldResult:
    workspace: Path
    created: bool
    files: tuple[str, ...]


def template_context(pack: Pack, exercise: Exercise) -> dict[str, Any]:
    return {
        "exercise": {"id": exercise.id, "title": exercise.title},
        "course": {"id": pack.course.id, "title": pack.course.title},
        "images": {name: pack.image_tag(name) for name in pack.course.images},
        "app_port": exercise.app.port,
    }


def render_layers(pack: Pack, exercise: Exercise, destination: Path) -> list[str]:
    """Render every template layer of ``exercise`` into ``destination``; return relative paths.

    Raises:
        ContentError: a template is broken (undefined variable, syntax error, escaping path).
    """
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    context = template_context(pack, exercise)
    destination = destination.resolve()
    written: dict[str, None] = {}
    for layer in pack.template_dirs(exercise):
        for source in sorted(layer.rglob("*")):
            relative = source.relative_to(layer)
            if any(part in _IGNORED for part in relative.parts) or source.is_dir():
                continue
            if source.is_symlink():
                raise ContentError(f"{source}: templates may not contain symbolic links.")
            rendered_name = relative.as_posix().removesuffix(".jinja")
            target = (destination / rendered_name).resolve()
            if not target.is_relative_to(destination):
                raise ContentError(f"{source}: would be written outside the workspace.")
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.suffix == ".jinja":
                try:
                    text = env.from_string(source.read_text(encoding="utf-8")).render(context)
                except jinja2.TemplateError as exc:
                    line = getattr(exc, "lineno", None)
                    where = f":{line}" if line else ""
                    raise ContentError(f"{source}{where}: {exc}") from None
                target.write_text(text, encoding="utf-8")
            else:
                shutil.copyfile(source, target)
            shutil.copymode(source, target)
            written[rendered_name] = None
    return list(written)


def new_project(pack: Pack, exercise: Exercise, workspace: Path) -> ScaffoldResult:
    """Create the exercise's starter project in ``workspace``, or keep the one already there.

    An existing project of the same exercise is left exactly as it is: the learner's edits are
    never overwritten.

    Raises:
        UserError: ``workspace`` holds something else (files that are not this exercise's project).
        ContentError: the exercise's templates are broken.
    """
    workspace = workspace.expanduser().resolve()
    if workspace.exists():
        existing = read_record(workspace) if (workspace / RECORD_FILE).is_file() else None
        if existing is not None and existing.exercise == exercise.id:
            return ScaffoldResult(workspace=workspace, created=False, files=())
        if existing is not None:
            raise UserError(
                f"{workspace} already holds the project of exercise {existing.exercise!r}.",
                hint="Choose another directory with --dir.",
            )
        if workspace.is_file() or any(workspace.iterdir()):
            raise UserError(
                f"{workspace} exists and is not empty; bb will not write into it.",
                hint="Choose an empty or new directory with --dir.",
            )
    # Render into a sibling temporary directory first: a broken template leaves nothing half-made.
    staging = workspace.with_name(f".{workspace.name}.bb-partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        files = render_layers(pack, exercise, staging)
        write_record(staging, Record(pack=pack.root, exercise=exercise.id, bb_version=__version__))
        if workspace.exists():
            workspace.rmdir()
        staging.rename(workspace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ScaffoldResult(workspace=workspace, created=True, files=tuple(files))


def lay_solution(exercise: Exercise, workspace: Path) -> None:
    """Copy the reference solution's files over a scaffolded starter (for the course checker)."""
    solution = exercise.solution_dir
    if not solution.is_dir():
        raise ContentError(f"{solution}: the reference solution is missing.")
    shutil.copytree(
        solution, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_IGNORED)
    )


def write_record(workspace: Path, record: Record) -> None:
    path = workspace / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(
        {"pack": str(record.pack), "exercise": record.exercise, "bb_version": record.bb_version},
        sort_keys=False,
    )
    path.write_text(RECORD_HEADER + body, encoding="utf-8")


def read_record(workspace: Path) -> Record:
    """Read a workspace's record file.

    Raises:
        UserError: the record is missing or was edited into something bb cannot read.
    """
    path = workspace / RECORD_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Record(
            pack=Path(data["pack"]),
            exercise=str(data["exercise"]),
            bb_version=str(data.get("bb_version", "")),
        )
    except FileNotFoundError:
        raise UserError(
            f"{workspace} is not a bb project (no {RECORD_FILE}).",
            hint="Run `bb grade` inside a directory made by `bb start`.",
        ) from None
    except (yaml.YAMLError, KeyError, TypeError):
        raise UserError(
            f"{path} is damaged.",
            hint="Restore it (it names the pack and exercise), or start the exercise again "
            "in a new directory with `bb start EXERCISE --dir PATH`.",
        ) from None
