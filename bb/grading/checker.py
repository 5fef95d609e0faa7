"""The course checker: prove a pack is consistent, and that every grader can fail and pass.

For each exercise: the manifest is valid, the lesson, hints, starter ``TODO`` and reference
solution exist, the templates render; then the unmodified starter is graded (it must fail), the
reference solution laid over it is graded (it must pass), and each known-wrong variant (its
files laid over the solution) is graded: it must fail, and every check its ``fails`` names must
end ``failed``. Those grades run side by side (``jobs`` at a time), each on its own network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from bb.errors import ContentError, UserError
from bb.pack.manifest import Exercise, Pack
from bb.results.report import GradeReport
from bb.stack.isolation import Isolation

if TYPE_CHECKING:
    from bb.stack.engine import Engine

#: Checks the grading stages report, which a variant's ``fails`` may name besides the suite's.
STAGE_CHECKS = ("build", "services", "migrate", "app", "time-limit")

#: Grades run at once by default. A grade mostly waits (builds, container start-up, pauses
#: in checks): on 2 cores, the mini pack's hello (starter, solution, 2 variants) took 69 s one
#: at a time, 53 s two at a time, 45 s three at a time. Two keeps timing-sensitive checks
#: (latency thresholds, races) from competing with more than one other grade for the cores.
DEFAULT_JOBS = 2


@dataclasses.dataclass(frozen=True)
class VariantCheck:
    """How one known-wrong variant fared: its grade, and what is wrong with that, if anything."""

    name: str
    mistake: str
    expected: tuple[str, ...]
    report: GradeReport
    problem: str | None

    @property
    def caught_by(self) -> tuple[str, ...]:
        """The checks that did not pass (failed or errored) on this variant."""
        return tuple(c.name for c in self.report.checks if c.status.value in ("failed", "error"))

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclasses.dataclass(frozen=True)
class ExerciseCheck:
    exercise: str
    problems: tuple[str, ...]
    starter: GradeReport | None = None
    solution: GradeReport | None = None
    variants: tuple[VariantCheck, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def static_problems(pack: Pack, exercise: Exercise) -> list[str]:
    """What is wrong with an exercise's files, without running anything."""
    from bb.pack.scaffold import render_layers

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
    problems.extend(_variant_problems(pack, exercise))
    return problems


def _variant_problems(pack: Pack, exercise: Exercise) -> list[str]:
    """Variants without files, and ``fails`` entries that name no check of the suite."""
    problems = []
    suite = pack.grader_dir(exercise)
    source = "\n".join(
        path.read_text(encoding="utf-8", errors="replace") for path in suite.glob("test_*.py")
    )
    defined = set(re.findall(r"^\s*(?:async\s+)?def\s+test_(\w+)\s*\(", source, re.MULTILINE))
    for name, variant in exercise.wrong.items():
        directory = exercise.wrong_dir(name)
        if not any(p.is_file() for p in directory.rglob("*")):
            problems.append(f"{directory}: wrong variant {name!r} has no files.")
        unknown = [c for c in variant.fails if c not in defined and c not in STAGE_CHECKS]
        if unknown:
            verb = "is not a check" if len(unknown) == 1 else "are not checks"
            problems.append(
                f"{exercise.root / 'exercise.yaml'}: wrong.{name}.fails: {', '.join(unknown)} "
                f"{verb} of {suite} (a check is a test function's name without `test_`)."
            )
    return problems


def check_exercise(
    pack: Pack,
    exercise: Exercise,
    *,
    grade: bool,
    variants: Sequence[str] | None = None,
    jobs: int = DEFAULT_JOBS,
    on_progress: Callable[[str], None] | None = None,
    isolation: Isolation = Isolation.STANDARD,
) -> ExerciseCheck:
    """Check one exercise; with ``grade``, grade its starter, its solution and its wrong
    variants on real containers, ``jobs`` grades at a time, under ``isolation`` (a pack
    meant for class grading should pass under strict).

    Args:
        variants: grade only these wrong variants (and neither starter nor solution).

    Raises:
        UserError: ``variants`` names a variant the exercise does not declare.
        EnvironmentProblem: Docker or the course images are missing (only with ``grade``).
    """
    unknown = [v for v in variants or () if v not in exercise.wrong]
    if unknown:
        raise UserError(
            f"{exercise.id} has no wrong variant called {', '.join(map(repr, unknown))}.",
            hint=f"Its variants: {', '.join(exercise.wrong) or '(none)'}.",
        )
    problems = static_problems(pack, exercise)
    if problems or not grade:
        return ExerciseCheck(exercise.id, tuple(problems))

    from bb.stack.engine import Engine

    say: Callable[[str], None] = on_progress or (lambda _m: None)
    engine = Engine.connect()
    engine.sweep()
    jobs_to_run = list(variants) if variants else ["starter", "solution", *exercise.wrong]
    scratch = Path(tempfile.mkdtemp(prefix="bb-check-"))
    lock = threading.Lock()

    def locked_say(message: str) -> None:
        with lock:
            say(message)

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="bb-check")
    try:
        futures = {
            job: pool.submit(
                _grade_one, pack, exercise, job, scratch / job, engine, locked_say, isolation
            )
            for job in jobs_to_run
        }
        reports = {job: future.result() for job, future in futures.items()}
    except BaseException:
        # Ctrl-C or SIGTERM reach this thread only: no queued grade may start, and the running
        # ones lose their containers now, so their checks end at once (nothing of a check is
        # kept, so nothing is lost) and their own teardown finds nothing left.
        pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            engine.remove_own_grades()
        raise
    finally:
        pool.shutdown(wait=True)
        shutil.rmtree(scratch, ignore_errors=True)

    starter, solution = reports.get("starter"), reports.get("solution")
    if starter is not None and starter.passed:
        problems.append(
            f"{exercise.id}: the unmodified starter PASSES its grader; a check that "
            "cannot fail teaches nothing."
        )
    if solution is not None and not solution.passed:
        failing = ", ".join(
            c.name for c in solution.checks if c.status.value in ("failed", "error")
        )
        problems.append(f"{exercise.id}: the reference solution fails its grader ({failing}).")
    checked = tuple(
        judge_variant(exercise, name, reports[name]) for name in exercise.wrong if name in reports
    )
    problems.extend(f"{exercise.id}: {v.problem}" for v in checked if v.problem)
    return ExerciseCheck(
        exercise.id, tuple(problems), starter=starter, solution=solution, variants=checked
    )


def judge_variant(exercise: Exercise, name: str, report: GradeReport) -> VariantCheck:
    """Whether a wrong variant's grade shows its mistake: it fails, and every check its
    ``fails`` names ended ``failed`` (not errored, skipped or passed)."""
    variant = exercise.wrong[name]
    statuses = {c.name: c.status.value for c in report.checks}
    caught_by = [c.name for c in report.checks if c.status.value in ("failed", "error")]
    problem: str | None = None
    if report.passed:
        problem = (
            f"wrong variant {name!r} PASSES its grader: no check catches the mistake "
            f"({variant.mistake})."
        )
    else:
        missed = [c for c in variant.fails if statuses.get(c) != "failed"]
        if missed:
            how = "; ".join(f"{c} {_ended(statuses.get(c))}" for c in missed)
            problem = (
                f"wrong variant {name!r} ({variant.mistake}) should fail "
                f"{', '.join(variant.fails)}, but {how}: caught by an unrelated check only "
                f"({', '.join(caught_by)})."
            )
    return VariantCheck(
        name=name,
        mistake=variant.mistake,
        expected=tuple(variant.fails),
        report=report,
        problem=problem,
    )


def _ended(status: str | None) -> str:
    if status is None:
        return "did not run"
    return {"error": "errored", "skipped": "was skipped"}.get(status, status)


def _grade_one(
    pack: Pack,
    exercise: Exercise,
    job: str,
    workspace: Path,
    engine: Engine,
    say: Callable[[str], None],
    isolation: Isolation = Isolation.STANDARD,
) -> GradeReport:
    """Scaffold the starter, lay the solution (and a variant's files) over it, and grade it."""
    from bb.grading.runner import grade_exercise
    from bb.pack.scaffold import lay_solution, new_project

    new_project(pack, exercise, workspace)
    if job != "starter":
        lay_solution(exercise, workspace)
    if job in exercise.wrong:
        shutil.copytree(
            exercise.wrong_dir(job),
            workspace,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".DS_Store"),
        )
    label = job if job in ("starter", "solution") else f"wrong variant {job}"
    say(f"{exercise.id}: grading the {label}")
    return grade_exercise(
        pack,
        exercise,
        workspace,
        engine=engine,
        keep_image=False,
        isolation=isolation,
        on_progress=functools.partial(_prefixed, say, f"{exercise.id} ({label})"),
    )


def _prefixed(say: Callable[[str], None], prefix: str, message: str) -> None:
    say(f"{prefix}: {message}")
