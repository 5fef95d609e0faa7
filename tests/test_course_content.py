"""The built-in course's content, read without an engine: wrong variants and hints agree with
the graders they name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bb.pack.manifest import Exercise, Pack, load_pack
from tests.conftest import ROOT

COURSE = load_pack(ROOT)
EXERCISES = sorted(COURSE.exercises)


def check_names(pack: Pack, exercise: Exercise) -> set[str]:
    """The checks of an exercise's grader suite: its test functions, minus ``test_``."""
    names = set()
    for module in pack.grader_dir(exercise).glob("test_*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        names |= {
            node.name.removeprefix("test_")
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        }
    return names


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_every_exercise_has_six_known_wrong_variants(exercise_id: str) -> None:
    assert len(COURSE.exercise(exercise_id).wrong) >= 6


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_wrong_variants_name_checks_that_exist(exercise_id: str) -> None:
    exercise = COURSE.exercise(exercise_id)
    checks = check_names(COURSE, exercise)
    for name, variant in exercise.wrong.items():
        unknown = set(variant.fails) - checks
        assert not unknown, f"{exercise_id}: wrong.{name} names no such check: {unknown}"
        files = [path for path in exercise.wrong_dir(name).rglob("*") if path.is_file()]
        assert files, f"{exercise_id}: wrong/{name} holds no file"


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_wrong_variants_change_the_reference(exercise_id: str) -> None:
    """Each variant's files differ from what they are laid over, so each makes a change."""
    exercise = COURSE.exercise(exercise_id)
    for name in exercise.wrong:
        root = exercise.wrong_dir(name)
        for path in (p for p in root.rglob("*") if p.is_file()):
            over = exercise.solution_dir / path.relative_to(root)
            assert not over.is_file() or over.read_bytes() != path.read_bytes(), (
                f"{exercise_id}: wrong/{name}/{path.relative_to(root)} equals the solution's"
            )


def test_wrong_variant_files_are_python_that_parses() -> None:
    for exercise_id in EXERCISES:
        for path in Path(COURSE.exercise(exercise_id).root, "wrong").rglob("*.py"):
            ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
