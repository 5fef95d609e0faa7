"""The course checker: prove a pack is consistent, and that every grader can fail and pass.

For each exercise: the manifest is valid, the lesson, hints, starter ``TODO`` and reference
solution exist, the templates render; then the unmodified starter is graded (it must fail) and
the reference solution laid over it is graded (it must pass).
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from bb.errors import ContentError
from bb.isolation import Isolation
from bb.pack import Exercise, Pack
from bb.report import GradeReport


@dataclasses.dataclass(frozen=True)
class ExerciseCheck:
    exercise: str
    problems: tuple[str, ...]
    starter: GradeReport | None = None
    solution: GradeReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def static_problems(pack: Pack, exercise: Exercise) -> list[str]:
    """What is wrong with an exercise's files, without running anything."""
    from bb.scaffold import render_layers

    problems = []
    if not pack.lesson_path(exercise.id).is_file():
        problems.append(f"{pack.lesson_path(exercise.id)}: the lesson is missing.")
    suite = pack.grader_dir(exercise)
    if not any(suite.glob("test_*.py")):
        problems.append(f"{suite}: no test_*.py files; a grader suite needs at least one check.")
    solution = exercise.solution_dir
    if not solution.is_dir() or not any(p.is_file() for p in solution.rglob("*")):
        problems.append(f"{solution}: the reference solution is missing or empty.")
    with tempfile.TemporaryDirectory(prefix="bb-check-") as scratch:
        try:
            files = render_layers(pack, exercise, Path(scratch))
        except ContentError as exc:
            problems.append(exc.message)
        else:
            if not any(
                "TODO" in (Path(scratch) / f).read_text(encoding="utf-8", errors="replace")
                for f in files
            ):
                problems.append(
                    f"{exercise.id}: the starter has no `TODO` marker. Add at least one, to show "
                    "the learner where to start."
                )
    return problems


def check_exercise(
    pack: Pack,
    exercise: Exercise,
    *,
    grade: bool,
    on_progress: Callable[[str], None] | None = None,
    isolation: Isolation = Isolation.STANDARD,
) -> ExerciseCheck:
    """Check one exercise; with ``grade``, grade its starter and its solution on real containers
    (under ``isolation``: a pack meant for class grading should pass under strict).

    Raises:
        EnvironmentProblem: Docker or the course images are missing (only with ``grade``).
    """
    problems = static_problems(pack, exercise)
    if problems or not grade:
        return ExerciseCheck(exercise.id, tuple(problems))

    from bb.grading import grade_exercise
    from bb.runtime import Engine
    from bb.scaffold import lay_solution, new_project

    say: Callable[[str], None] = on_progress or (lambda _m: None)
    engine = Engine.connect()
    engine.sweep()
    reports: dict[str, GradeReport] = {}
    scratch = Path(tempfile.mkdtemp(prefix="bb-check-"))
    try:
        for variant in ("starter", "solution"):
            workspace = scratch / variant
            new_project(pack, exercise, workspace)
            if variant == "solution":
                lay_solution(exercise, workspace)
            say(f"{exercise.id}: grading the {variant}")
            reports[variant] = grade_exercise(
                pack,
                exercise,
                workspace,
                engine=engine,
                keep_image=False,
                isolation=isolation,
                on_progress=functools.partial(_prefixed, say, f"{exercise.id} ({variant})"),
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    starter, solution = reports["starter"], reports["solution"]
    if starter.passed:
        problems.append(
            f"{exercise.id}: the unmodified starter PASSES its grader; a check that "
            "cannot fail teaches nothing."
        )
    if not solution.passed:
        failing = ", ".join(
            c.name for c in solution.checks if c.status.value in ("failed", "error")
        )
        problems.append(f"{exercise.id}: the reference solution fails its grader ({failing}).")
    return ExerciseCheck(exercise.id, tuple(problems), starter=starter, solution=solution)


def _prefixed(say: Callable[[str], None], prefix: str, message: str) -> None:
    say(f"{prefix}: {message}")
