"""Renderers for what the learner commands show: the course map, lessons, hints, progress.

Text from packs, projects and paths is never read as Rich markup: it is wrapped in ``Text``,
so a ``[red]`` in a path or a title is shown as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from bb.cli.console import printable

if TYPE_CHECKING:
    from bb.grading.checker import ExerciseCheck
    from bb.grading.classroom import StudentResult
    from bb.grading.runner import CheckStarted
    from bb.pack.manifest import Exercise, Pack, PackIdentity
    from bb.pack.projects import Backup, FileDiff
    from bb.progress import ExerciseProgress, RevealedHint
    from bb.stack.doctor import Finding
    from bb.stack.lifecycle import StackFailed
    from bb.stack.up import UpStack

_STATE = {
    "passed": ("✓ passed", "green"),
    "started": ("… started", "yellow"),
    None: ("· not started", "dim"),
}


def _state(progress: Mapping[str, ExerciseProgress], exercise_id: str) -> str | None:
    entry = progress.get(exercise_id)
    return None if entry is None else entry.status


def pack_line(pack: PackIdentity) -> Text:
    """Which pack: its title and id, where it lives, and the digest of its content."""
    return Text.assemble(
        ("pack: ", "dim"),
        pack.title,
        f" ({pack.id}) · ",
        "built-in" if pack.builtin else pack.where,
        (" · content ", "dim"),
        pack.short_digest,
    )


def course_map(
    pack: Pack, progress: Mapping[str, ExerciseProgress], current: str | None = None
) -> Any:
    table = Table(
        title=Text(pack.course.title),
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
            table.add_row(str(number), name, Text(label, style=style), Text(exercise.title))
    return Group(table, Text(""), pack_line(pack.identity), Text(""))


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


def prose(text: str) -> Text:
    """A pack's sentence exactly as written, with its `code` spans shown as code.

    Hints and messages are not rendered as Markdown: "2**63-1" must not turn into a bold "63".
    The backticks stay, so the text reads the same without colour and copies back intact.
    """
    out = Text()
    for index, part in enumerate(text.split("`")):
        inside_code = index % 2 == 1
        out.append(f"`{part}`" if inside_code else part, style="cyan" if inside_code else "")
    if text.count("`") % 2:  # an unpaired backtick: show it, as written
        out = Text(text)
    return out


def numbered(items: Sequence[str]) -> Group:
    """A numbered list with hanging indents; each item as :func:`prose`."""
    from bb.results.report import Indented

    width = len(f"{len(items)}.") + 1
    return Group(*(Indented(prose(item), width, f"{n}.") for n, item in enumerate(items, 1)))


def hints(exercise: Exercise, revealed: Mapping[str, RevealedHint] | None = None) -> Any:
    """The exercise's hints, then what the learner's grades have revealed of each check's."""
    title = Text(f"Hints for {exercise.id} ({exercise.title})", style="bold")
    parts: list[Any] = [title, numbered(exercise.hints), Text("")]
    if not revealed:
        parts.append(
            Text("A check's own hints appear here once it fails in `bb grade`.", style="dim")
        )
        return Group(*parts)
    parts.append(Text("Hints your grades revealed, by check:", style="bold"))
    for item in revealed.values():
        parts.append(revealed_hint(item))
    return Group(*parts)


def revealed_hint(item: RevealedHint, *, advanced: bool | None = None) -> Any:
    """One check's hint levels seen so far, and whether more are left."""
    from bb.results.report import Indented

    head = Text(("\n" if advanced is None else "") + item.check, style="bold")
    head.append(f"  ({printable(item.description)})", "dim")
    levels = [
        Indented(prose(printable(text)), 6, f"{number}/{len(item.levels)}")
        for number, text in enumerate(item.seen, 1)
    ]
    if item.more:
        note = f"`bb hint --next {item.check}` reveals level {item.level + 1}."
    elif advanced is False:
        note = f"That was the last hint for {item.check}: there is no deeper level."
    else:
        note = "That is every level of this hint."
    return Group(head, *levels, Indented(Text(note, style="dim"), 6))


def grade_status(message: str, running: CheckStarted | None, now: float) -> Text:
    """The live line of a grade: what it is doing, or the check that has been running a
    while (:data:`SLOW_CHECK` seconds or more) and for how long."""
    if running is not None and now - running.at >= SLOW_CHECK:
        return Text.assemble(
            "running ", (printable(running.description), "bold"), f" for {now - running.at:.0f} s"
        )
    return Text(printable(message))


#: Seconds after which the live line names the running check.
SLOW_CHECK = 2.0


def progress_summary(pack: Pack, progress: Mapping[str, ExerciseProgress]) -> Any:
    passed = sum(1 for e in pack.exercises if _state(progress, e) == "passed")
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in ("exercise", "status", "attempts", "project"):
        table.add_column(column)
    for exercise_id in pack.exercises:
        entry = progress.get(exercise_id)
        label, style = _STATE[_state(progress, exercise_id)]
        state = Text(label, style=style)
        if entry and entry.passed_at is not None and entry.passed_digest != pack.identity.digest:
            # A pass outlives changes to the pack; say which content it was earned on.
            state.append(
                f" (on content {entry.passed_digest[:12]}; the pack has changed since)"
                if entry.passed_digest
                else " (before bb kept pack versions)",
                style="dim",
            )
        table.add_row(
            exercise_id,
            state,
            str(entry.attempts) if entry else "0",
            Text(str(entry.workspace)) if entry and entry.workspace else "",
        )
    header = Text(
        f"{pack.course.title}: {passed} of {len(pack.exercises)} exercises passed", style="bold"
    )
    return Group(header, pack_line(pack.identity), Text(""), table)


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
            lines.append(Text("    " + printable(problem), style="red"))
    ok = all(r.ok for r in results)
    lines.append(
        Text(
            "\nThe pack is sound." if ok else "\nThe pack has problems (above).",
            style="bold green" if ok else "bold red",
        )
    )
    return Group(*lines)


def diff_view(diffs: Sequence[FileDiff]) -> Any:
    """The reference solution against the learner's files: a unified diff per changed file."""
    parts: list[Any] = []
    same = [d.path for d in diffs if not d.diff and not d.note]
    for item in diffs:
        if item.note:
            parts.append(Text.assemble((item.path, "bold"), f": {item.note}"))
        elif item.diff:
            body = Text()
            for line in item.diff.splitlines(keepends=True):
                style = (
                    "bold"
                    if line.startswith(("---", "+++"))
                    else "green"
                    if line.startswith("+")
                    else "red"
                    if line.startswith("-")
                    else "cyan"
                    if line.startswith("@@")
                    else ""
                )
                body.append(line, style=style)
            parts.append(body)
    if same:
        parts.append(Text(f"Same as the solution: {', '.join(same)}", style="dim"))
    if not any(d.diff or d.note for d in diffs):
        parts.insert(0, Text("Your project already matches the reference solution.", "bold"))
    return Group(*parts)


def backups_view(backups: Sequence[Backup]) -> Any:
    if not backups:
        return Text("No backups yet: `bb reset` makes one before it restores a starter.")
    lines = Text()
    for backup in backups:
        taken = backup.taken_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{taken}  ", "bold").append(backup.exercise, "bold")
        lines.append(f"  (of {backup.workspace})\n", "dim")
        lines.append(f"  {backup.path}\n")
    lines.rstrip()
    return lines


_VERDICT = {"ok": ("✓", "green"), "warning": ("!", "yellow"), "blocking": ("✗", "red")}


def findings_view(findings: Sequence[Finding]) -> Any:
    from bb.results.report import Indented

    parts: list[Any] = []
    for finding in findings:
        glyph, style = _VERDICT[finding.verdict.value]
        parts.append(Text.assemble((f"{glyph} {finding.topic}", style), ": ", Text(finding.detail)))
        if finding.fix:
            parts.append(Indented(Text.assemble(("fix: ", "bold cyan"), prose(finding.fix)), 4))
    blocking = sum(1 for f in findings if f.verdict.value == "blocking")
    parts.append(
        Text(
            f"\n{blocking} problem(s) block grading: fix them, then run `bb doctor` again."
            if blocking
            else "\nThis machine is ready to grade.",
            style="bold red" if blocking else "bold green",
        )
    )
    return Group(*parts)


def class_summary(results: Sequence[StudentResult], out: Path) -> Any:
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in ("student", "score", "result"):
        table.add_column(column)
    for result in results:
        report = result.report
        if report.outcome.value != "graded":
            verdict = Text(f"not graded: {report.reason}", style="magenta")
        elif report.passed:
            verdict = Text("✓ passed", style="green")
        else:
            verdict = Text("✗ not passed", style="red")
        if result.reused:
            verdict.append(" (unchanged, kept)", style="dim")
        table.add_row(Text(result.student), f"{report.score:g}/{report.max_score:g}", verdict)
    footer = Text.assemble("\nResults: ", (str(out), "bold"), " (grades.csv, report.html)")
    return Group(table, footer)


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def up_running(stack: UpStack) -> Any:
    """Where `bb up`'s stack answers, with commands to paste."""
    lines = Text()
    lines.append("Your stack is running", style="bold green")
    lines.append(" (the data was kept)\n\n" if stack.kept else "\n\n")
    lines.append("  app       ", style="bold")
    lines.append(f"{stack.app_url}\n", style="cyan")
    for name, address in stack.services.items():
        lines.append(f"  {name:<9} ", style="bold")
        lines.append(f"{address}\n", style="cyan")
    lines.append("\nTry:\n")
    lines.append(f"  curl -i {stack.app_url}/health\n")
    for address in stack.services.values():
        if address.startswith("postgresql://"):
            lines.append(f"  psql '{address}'\n")
    lines.append("\nRun `bb up` again after editing your code; `bb down` stops it all.\n")
    return lines


def up_failed(failure: StackFailed) -> Any:
    """Why `bb up` could not bring the stack up, with the end of the failing log."""
    parts: list[Any] = [Text(f"✗ {failure.step}: {failure.message}", style="bold red")]
    if failure.log:
        parts.append(Text(printable(failure.log), style="dim"))
    return Group(*parts)
