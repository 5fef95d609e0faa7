"""Renderers for what the learner commands show: the course map, lessons, hints, progress."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from bb.checker import ExerciseCheck
    from bb.pack import Exercise, Pack
    from bb.progress import ExerciseProgress

_STATE = {
    "passed": ("✓ passed", "green"),
    "started": ("… started", "yellow"),
    None: ("· not started", "dim"),
}


def _state(progress: Mapping[str, ExerciseProgress], exercise_id: str) -> str | None:
    entry = progress.get(exercise_id)
    return None if entry is None else entry.status


def course_map(
    pack: Pack, progress: Mapping[str, ExerciseProgress], current: str | None = None
) -> Any:
    table = Table(
        title=pack.course.title,
        title_justify="left",
        show_edge=False,
        box=None,
        pad_edge=False,
        padding=(0, 2),
    )
    table.add_column("#", justify="right", style="dim")
    table.add_column("exercise")
    table.add_column("status")
    table.add_column("what you build")
    number = 0
    for module in pack.course.modules:
        table.add_row("", Text(module.title, style="bold underline"), "", "")
        for exercise_id in module.exercises:
            number += 1
            exercise = pack.exercises[exercise_id]
            label, style = _STATE[_state(progress, exercise_id)]
            name = Text(
                ("▶ " if exercise_id == current else "  ") + exercise_id,
                style="bold" if exercise_id == current else "",
            )
            table.add_row(str(number), name, Text(label, style=style), exercise.title)
    return Group(table, Text(""))


def lesson(pack: Pack, exercise: Exercise) -> Any:
    text = pack.lesson_text(exercise.id)
    return Group(Markdown(text), Text(""))


def next_steps(workspace: Path, *, created: bool) -> Any:
    verb = "Your project is ready at" if created else "Your project is at"
    return Text.assemble(
        (f"{verb} ", "bold"),
        (str(workspace), "bold cyan"),
        "\n\nNext:\n",
        f"  cd {workspace}\n",
        "  # read README.md, make the TODOs real, then:\n",
        "  bb grade            # runs your app and its database in containers and checks it\n",
        "  bb hint             # when you are stuck\n",
    )


def hints(exercise: Exercise) -> Any:
    items = "\n".join(f"{n}. {hint}" for n, hint in enumerate(exercise.hints, 1))
    title = Text(f"Hints for {exercise.id} ({exercise.title})", style="bold")
    return Group(title, Markdown(items))


def progress_summary(pack: Pack, progress: Mapping[str, ExerciseProgress]) -> Any:
    passed = sum(1 for e in pack.exercises if _state(progress, e) == "passed")
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in ("exercise", "status", "attempts", "project"):
        table.add_column(column)
    for exercise_id in pack.exercises:
        entry = progress.get(exercise_id)
        label, style = _STATE[_state(progress, exercise_id)]
        table.add_row(
            exercise_id,
            Text(label, style=style),
            str(entry.attempts) if entry else "0",
            str(entry.workspace) if entry and entry.workspace else "",
        )
    header = Text(
        f"{pack.course.title}: {passed} of {len(pack.exercises)} exercises passed\n", style="bold"
    )
    return Group(header, table)


def checker_summary(results: Sequence[ExerciseCheck]) -> Any:
    lines: list[Any] = []
    for result in results:
        verdict = ("✓", "green") if result.ok else ("✗", "red")
        detail = ""
        if result.starter is not None and result.solution is not None:
            starter_failed = sum(1 for c in result.starter.checks if c.status.value != "passed")
            detail = (
                f"  starter: {starter_failed} of {len(result.starter.checks)} checks not "
                f"passed ({result.starter.duration:.1f} s); solution: "
                f"{'passes' if result.solution.passed else 'FAILS'} "
                f"({result.solution.duration:.1f} s)"
            )
        lines.append(
            Text.assemble((verdict[0] + " ", verdict[1]), (result.exercise, "bold"), detail)
        )
        for variant in result.variants:
            mark = ("✓", "green") if variant.ok else ("✗", "red")
            caught = ", ".join(variant.caught_by) or "nothing"
            lines.append(
                Text.assemble(
                    "    ",
                    (mark[0] + " ", mark[1]),
                    f"wrong variant {variant.name}: caught by {caught} "
                    f"(expected {', '.join(variant.expected)}; {variant.report.duration:.1f} s)",
                )
            )
            if not variant.ok:
                # What the catching checks said, so the author sees why without regrading.
                for check in variant.report.checks:
                    if check.status.value in ("failed", "error"):
                        lines.append(Text(f"        {check.name}: {check.message}", style="dim"))
                        if check.log:
                            tail = "\n".join(check.log.splitlines()[-5:])
                            lines.append(Text(_indent(tail, 10), style="dim"))
        for problem in result.problems:
            lines.append(Text("    " + problem, style="red"))
    ok = all(r.ok for r in results)
    lines.append(
        Text(
            "\nThe pack is sound." if ok else "\nThe pack has problems (above).",
            style="bold green" if ok else "bold red",
        )
    )
    return Group(*lines)


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())
