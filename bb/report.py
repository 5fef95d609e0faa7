"""Grade results as data, and the renderers that turn them into a table or a JSON document."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

#: Version of the JSON document printed by ``bb grade --json``.
RESULT_VERSION = 1


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
    hint: str | None = None
    duration: float = 0.0
    #: Extra text for the learner: the app's last log lines, a build log's tail.
    log: str | None = None


@dataclasses.dataclass(frozen=True)
class GradeReport:
    exercise: str
    title: str
    checks: tuple[CheckResult, ...]
    duration: float
    #: Seconds spent in each stage (build, services, migrate, app, checks, teardown).
    timings: dict[str, float]
    #: The isolation level the graded code ran under (bb.isolation.Isolation's values).
    isolation: str = "standard"

    @property
    def passed(self) -> bool:
        return (
            bool(self.checks)
            and all(c.status in (Status.PASSED, Status.SKIPPED) for c in self.checks)
            and any(c.status is Status.PASSED for c in self.checks)
        )

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status is status)


def to_json(report: GradeReport) -> dict[str, Any]:
    """The versioned document ``bb grade --json`` prints."""
    return {
        "bb_result_version": RESULT_VERSION,
        "exercise": report.exercise,
        "title": report.title,
        "passed": report.passed,
        "isolation": report.isolation,
        "summary": {status.value: report.count(status) for status in Status},
        "duration_seconds": round(report.duration, 3),
        "timings": {k: round(v, 3) for k, v in report.timings.items()},
        "checks": [
            {
                "name": c.name,
                "description": c.description,
                "status": c.status.value,
                "message": c.message,
                "expected": c.expected,
                "actual": c.actual,
                "hint": c.hint,
                "duration_seconds": round(c.duration, 3),
                "log": c.log,
            }
            for c in report.checks
        ],
    }


_GLYPHS = {
    Status.PASSED: ("✓", "green"),
    Status.FAILED: ("✗", "red"),
    Status.SKIPPED: ("–", "yellow"),
    Status.ERROR: ("!", "magenta"),
}


def render(report: GradeReport, *, verbose: bool = False) -> Any:
    """A Rich renderable: one line per check, and the why of every check that did not pass."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text.assemble((report.title, "bold"), f"  ({report.exercise})\n")]
    # Several checks often fail on one root cause (the create they all need); say it once.
    first_with: dict[tuple[str, str | None, str | None], str] = {}
    for check in report.checks:
        glyph, style = _GLYPHS[check.status]
        line = Text.assemble(
            (f"{glyph} {check.status.value:<7}", style), " ", check.description or check.name
        )
        parts.append(line)
        if check.status is Status.PASSED and not verbose:
            continue
        cause = (check.message, check.expected, check.actual)
        if check.status is Status.FAILED and check.message and cause in first_with:
            parts.append(_Indented(Text(f"{check.message} (as in: {first_with[cause]})", "dim")))
            continue
        first_with.setdefault(cause, check.description or check.name)
        details = Text()
        if check.message:
            details.append(check.message + "\n")
        if check.expected is not None:
            details.append("expected: ", "bold").append(check.expected + "\n")
        if check.actual is not None:
            details.append("arrived:  ", "bold").append(check.actual + "\n")
        if check.log:
            details.append("last log lines:\n", "bold").append(check.log.rstrip() + "\n", "dim")
        if check.hint and check.status in (Status.FAILED, Status.ERROR):
            details.append("hint: ", "bold cyan").append(check.hint + "\n")
        if details.plain:
            details.rstrip()
            parts.append(_Indented(details))

    counts = ", ".join(
        f"{report.count(s)} {s.value}" for s in Status if report.count(s) or s is Status.PASSED
    )
    verdict = (
        ("All checks passed.", "bold green")
        if report.passed
        else ("Not yet: fix the first failing check, then run `bb grade` again.", "bold red")
    )
    parts.append(
        Text.assemble(
            "\n", verdict, f"\n{counts} in {report.duration:.1f} s", _isolation_note(report)
        )
    )
    return Group(*parts)


def _isolation_note(report: GradeReport) -> str:
    # The default needs no mention; anything else changes what the app could do, so say it.
    return "" if report.isolation == "standard" else f" ({report.isolation} isolation)"


class _Indented:
    """A renderable indented under its check's line, wrapped without trailing padding (Rich's
    Padding fills every line to the full width, which litters copied output with spaces)."""

    def __init__(self, renderable: Any, indent: int = 10) -> None:
        self.renderable = renderable
        self.indent = indent

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.segment import Segment

        width = max(options.max_width - self.indent, 20)
        for line in console.render_lines(self.renderable, options.update_width(width), pad=False):
            yield Segment(" " * self.indent)
            yield from line
            yield Segment.line()
