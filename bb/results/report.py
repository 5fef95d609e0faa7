"""Grade results as data, and the renderers that turn them into a table or a JSON document."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

#: Version of the JSON document printed by ``bb grade --json`` (version 1 is still read).
RESULT_VERSION = 2

#: When a learner may see a check (Gradescope's vocabulary, which other platforms map onto).
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: The check could not run to a verdict (its setup broke).
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    description: str
    status: Status
    message: str = ""
    expected: str | None = None
    actual: str | None = None
    #: The hint shown: level ``hint_level`` of ``hints``.
    hint: str | None = None
    duration: float = 0.0
    #: Extra text for the learner: the app's last log lines, a build log's tail.
    log: str | None = None
    #: What passing it is worth. Stages (build, app start…) are worth nothing by themselves:
    #: when one fails, the checks it blocks are skipped and score nothing.
    max_points: float = 0.0
    visibility: str = "visible"
    #: A command that repeats what the check did last (curl, psql), against `bb up`'s stack.
    reproduce: str | None = None
    #: Every level of the hint this check offers, shortest first (empty: ``hint`` alone).
    hints: tuple[str, ...] = ()
    #: Which level ``hint`` is, from 1 (0 when there is no hint).
    hint_level: int = 0

    def __post_init__(self) -> None:
        # A hint given alone is its first level; no hint, no level.
        level = max(self.hint_level, 1) if self.hint else 0
        if level != self.hint_level:
            object.__setattr__(self, "hint_level", level)

    @property
    def hint_levels(self) -> tuple[str, ...]:
        """The levels of this check's hint (a hint given alone is one level)."""
        if self.hints:
            return self.hints
        return (self.hint,) if self.hint else ()

    @property
    def id(self) -> str:
        """Stable across runs and bb versions: the check's function name, or the stage's."""
        return self.name

    @property
    def points(self) -> float:
        return self.max_points if self.status is Status.PASSED else 0.0


@dataclasses.dataclass(frozen=True)
class Selection:
    """A partial grade's ``-k`` pattern, and the checks it left out (never run)."""

    pattern: str
    left_out: tuple[str, ...] = ()


class Outcome(enum.StrEnum):
    #: Grading finished: the checks' verdicts are the learner's result, whatever they are.
    GRADED = "graded"
    #: bb, the course or the machine failed: no verdict on the learner's work.
    NOT_GRADED = "not-graded"


@dataclasses.dataclass(frozen=True)
class GradeReport:
    exercise: str
    title: str
    checks: tuple[CheckResult, ...]
    duration: float
    #: Seconds spent in each stage (build, services, migrate, app, checks, teardown).
    timings: dict[str, float]
    #: False when the grade stopped before its verdict (the engine went away, the grader
    #: broke): the checks are what it had found out so far.
    complete: bool = True
    outcome: Outcome = Outcome.GRADED
    #: Why the run is not graded (with Outcome.NOT_GRADED).
    reason: str = ""
    #: Provenance: the pack (id, title, digest), bb's version, the images' ids.
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.checks)

    #: The isolation level the graded code ran under (bb.stack.isolation.Isolation's values).
    isolation: str = "standard"
    #: Set when only some checks ran (``bb grade -k``): such a grade never passes.
    selection: Selection | None = None

    @property
    def passed(self) -> bool:
        """A complete grade in which every check reported a pass. A skipped check proved
        nothing, and a check the grader declared but never reported is in ``checks`` as an
        error, so neither is a pass; nor is a partial grade, however its checks went."""
        return self.selection is None and self.all_ran_passed

    @property
    def all_ran_passed(self) -> bool:
        """Every check that ran (all of them, or those a partial grade chose) passed."""
        return (
            self.outcome is Outcome.GRADED
            and self.complete
            and bool(self.checks)
            and all(c.status is Status.PASSED for c in self.checks)
        )

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status is status)


def to_json(report: GradeReport) -> dict[str, Any]:
    """The versioned document ``bb grade --json`` prints."""
    return {
        "bb_result_version": RESULT_VERSION,
        "outcome": report.outcome.value,
        "reason": report.reason,
        "exercise": report.exercise,
        "title": report.title,
        "passed": report.passed,
        "score": report.score,
        "max_score": report.max_score,
        "complete": report.complete,
        "isolation": report.isolation,
        # A partial grade (bb grade -k): its pattern and the checks it did not run.
        "filter": None
        if report.selection is None
        else {"pattern": report.selection.pattern, "left_out": list(report.selection.left_out)},
        "summary": {status.value: report.count(status) for status in Status},
        "duration_seconds": round(report.duration, 3),
        "timings": {k: round(v, 3) for k, v in report.timings.items()},
        **report.provenance,
        "checks": [
            {
                "id": c.id,
                "name": c.name,
                "description": c.description,
                "status": c.status.value,
                "points": c.points,
                "max_points": c.max_points,
                "visibility": c.visibility,
                "message": c.message,
                "expected": c.expected,
                "actual": c.actual,
                "hint": c.hint,
                "hint_level": c.hint_level,
                "hint_levels": len(c.hint_levels),
                "duration_seconds": round(c.duration, 3),
                "log": c.log,
                "reproduce": c.reproduce,
            }
            for c in report.checks
        ],
    }


def weighed(
    check: CheckResult, points: Mapping[str, float], visibility: Mapping[str, str]
) -> CheckResult:
    """``check`` with the worth and visibility its pack gives it (1 point by default)."""
    if check.name in STAGES:
        return check
    return dataclasses.replace(
        check,
        max_points=points.get(check.name, 1.0),
        visibility=visibility.get(check.name, "visible"),
    )


def from_json(document: dict[str, Any]) -> GradeReport:
    """Read a document written by :func:`to_json`, of this version or version 1.

    Raises:
        ValueError: it is not such a document.
    """
    version = document.get("bb_result_version")
    if version not in (1, RESULT_VERSION):
        raise ValueError(f"not a bb result document of a known version ({version!r})")
    provenance_keys = ("pack", "bb_version", "images", "submission")
    checks = tuple(
        CheckResult(
            name=str(c["name"]),
            description=str(c.get("description") or c["name"]),
            status=Status(c["status"]),
            message=str(c.get("message") or ""),
            expected=c.get("expected"),
            actual=c.get("actual"),
            hint=c.get("hint"),
            duration=float(c.get("duration_seconds") or 0.0),
            log=c.get("log"),
            reproduce=c.get("reproduce"),
            # Version 1 had no points: each check that is not a stage was worth 1.
            max_points=float(c.get("max_points", 0.0 if c["name"] in STAGES else 1.0)),
            visibility=str(c.get("visibility") or "visible"),
            hint_level=int(c.get("hint_level") or 0),
        )
        for c in document["checks"]
    )
    chosen = document.get("filter")
    selection = (
        Selection(str(chosen["pattern"]), tuple(map(str, chosen.get("left_out") or ())))
        if isinstance(chosen, dict)
        else None
    )
    return GradeReport(
        exercise=str(document["exercise"]),
        title=str(document.get("title") or document["exercise"]),
        checks=checks,
        duration=float(document.get("duration_seconds") or 0.0),
        timings=dict(document.get("timings") or {}),
        outcome=Outcome(document.get("outcome", Outcome.GRADED.value)),
        reason=str(document.get("reason") or ""),
        complete=bool(document.get("complete", True)),
        isolation=str(document.get("isolation") or "standard"),
        provenance={k: document[k] for k in provenance_keys if k in document},
        selection=selection,
    )


#: Names of the stages grading reports as checks of their own (they carry no points).
STAGES = frozenset({"build", "services", "migrate", "app", "time-limit", "suite"})


_GLYPHS = {
    Status.PASSED: ("✓", "green"),
    Status.FAILED: ("✗", "red"),
    Status.SKIPPED: ("–", "yellow"),
    Status.ERROR: ("!", "magenta"),
}


def render(
    report: GradeReport, *, verbose: bool = False, compact: bool = False, lines: bool = True
) -> Any:
    """A Rich renderable: one line per check, and the why of every check that did not pass
    (with ``compact``, of the first one only: `bb watch` shows what to fix next). Without
    ``lines``, only the checks explained get a line (the others were shown as they ran).

    Every string from the grade (messages, what arrived, logs) came from the learner's app or
    the pack: it is stripped of control characters and never read as Rich markup.
    """
    from rich.console import Group
    from rich.text import Text

    from bb.cli.console import printable as clean

    # Without lines, the title came first too (bb watch prints it before the checks run).
    parts: list[Any] = (
        [Text.assemble((clean(report.title), "bold"), f"  ({clean(report.exercise)})\n")]
        if lines
        else []
    )
    # Several checks often fail on one root cause (the create they all need); say it once.
    first_with: dict[tuple[str, str | None, str | None], str] = {}
    explained = False
    for check in report.checks:
        name = clean(check.description or check.name)
        explains = (check.status is not Status.PASSED or verbose) and not (compact and explained)
        if lines or explains:
            parts.append(check_line(check))
        if not explains:
            continue
        explained = check.status is not Status.PASSED
        cause = (check.message, check.expected, check.actual)
        if check.status is Status.FAILED and check.message and cause in first_with:
            again = f"{clean(check.message)} (as in: {first_with[cause]})"
            parts.append(Indented(Text(again, "dim")))
            continue
        first_with.setdefault(cause, name)
        details = Text()
        if check.message:
            details.append(clean(check.message) + "\n")
        if check.expected is not None:
            details.append("expected: ", "bold").append(clean(check.expected) + "\n")
        if check.actual is not None:
            details.append("arrived:  ", "bold").append(clean(check.actual) + "\n")
        if check.log:
            details.append("last log lines:\n", "bold").append(
                clean(check.log).rstrip() + "\n", "dim"
            )
        if check.hint and check.status in (Status.FAILED, Status.ERROR):
            details.append(hint_label(check), "bold cyan").append(clean(check.hint) + "\n")
        if check.reproduce and check.status is Status.FAILED:
            details.append("try it (after `bb up`): ", "bold").append(
                clean(check.reproduce) + "\n", "cyan"
            )
        if details.plain:
            details.rstrip()
            parts.append(Indented(details))

    counts = ", ".join(
        f"{report.count(s)} {s.value}" for s in Status if report.count(s) or s is Status.PASSED
    )
    if not report.complete:
        verdict = ("Grading stopped before its verdict: the error below says why.", "bold red")
    elif report.selection is not None:
        verdict = _partial_verdict(report, report.selection)
    elif report.passed:
        verdict = ("All checks passed.", "bold green")
    elif compact:
        verdict = ("Not yet: fix the first failing check and save.", "bold red")
    else:
        verdict = ("Not yet: fix the first failing check, then run `bb grade` again.", "bold red")
    parts.append(
        Text.assemble(
            "\n", verdict, f"\n{counts} in {report.duration:.1f} s", _isolation_note(report)
        )
    )
    return Group(*parts)


def check_line(check: CheckResult) -> Any:
    """A check's one line: glyph, status and description (inert text, never markup)."""
    from rich.text import Text

    from bb.cli.console import printable

    glyph, style = _GLYPHS[check.status]
    name = printable(check.description or check.name)
    return Text.assemble((f"{glyph} {check.status.value:<7}", style), " ", name)


def hint_label(check: CheckResult) -> str:
    """``hint: `` for a hint of one level, ``hint 2/3: `` for the second of three."""
    total = len(check.hint_levels)
    return "hint: " if total <= 1 else f"hint {max(check.hint_level, 1)}/{total}: "


def _partial_verdict(report: GradeReport, selection: Selection) -> tuple[str, str]:
    from bb.cli.console import printable

    what = f"Partial grade (-k {printable(selection.pattern)}, {len(selection.left_out)} " + (
        "check left out)" if len(selection.left_out) == 1 else "checks left out)"
    )
    if report.all_ran_passed:
        return (
            f"{what}: the chosen checks passed. A partial grade never passes the exercise: "
            "run `bb grade` without -k for that.",
            "bold yellow",
        )
    return (f"{what}: not yet; fix the first failing check, then grade again.", "bold red")


def _isolation_note(report: GradeReport) -> str:
    # The default needs no mention; anything else changes what the app could do, so say it.
    return "" if report.isolation == "standard" else f" ({report.isolation} isolation)"


class Indented:
    """A renderable indented by ``indent`` columns, wrapped without trailing padding (Rich's
    Padding fills every line to the full width, which litters copied output with spaces).
    ``marker`` (a list number, say) stands in the first line's indent."""

    def __init__(self, renderable: Any, indent: int = 10, marker: str = "") -> None:
        self.renderable = renderable
        self.indent = indent
        self.marker = marker

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.segment import Segment

        width = max(options.max_width - self.indent, 20)
        lines = console.render_lines(self.renderable, options.update_width(width), pad=False)
        for number, line in enumerate(lines):
            lead = self.marker if number == 0 else ""
            yield Segment(lead.rjust(self.indent - 1) + " " if lead else " " * self.indent)
            while line and not line[-1].text.rstrip(" "):  # a wrap leaves the space behind
                line = line[:-1]
            if line:
                last = line[-1]
                line = [*line[:-1], Segment(last.text.rstrip(" "), last.style, last.control)]
            yield from line
            yield Segment.line()
