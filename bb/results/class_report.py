"""A class's results for people: grades.csv for the gradebook, and one self-contained HTML
page (no scripts or styles from the network) with pass rates, common failures and each
student's checks."""

from __future__ import annotations

import collections
import csv
import html
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bb.results.report import Outcome, Status

if TYPE_CHECKING:
    from bb.grading.classroom import StudentResult
    from bb.pack.manifest import Exercise


def check_columns(results: Sequence[StudentResult]) -> list[str]:
    """Check ids in the order grades first list them (stages and checks alike)."""
    seen: dict[str, None] = {}
    for result in results:
        for check in result.report.checks:
            seen.setdefault(check.id, None)
    return list(seen)


def grades_csv(results: Sequence[StudentResult]) -> str:
    """student, one column of points per check, total, max, percent, outcome."""
    columns = check_columns(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *columns, "total", "max", "percent", "outcome"])
    for result in results:
        report = result.report
        by_id = {check.id: check for check in report.checks}
        percent = 100 * report.score / report.max_score if report.max_score else 0.0
        writer.writerow(
            [
                _cell(result.student),
                *(_points(by_id[c].points) if c in by_id else "" for c in columns),
                _points(report.score),
                _points(report.max_score),
                f"{percent:.1f}",
                report.outcome.value
                if report.outcome is Outcome.GRADED
                else f"{report.outcome.value}: {report.reason}",
            ]
        )
    return buffer.getvalue()


def _points(value: float) -> str:
    return f"{value:g}"


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: never for a name.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def html_report(exercise: Exercise, results: Sequence[StudentResult]) -> str:
    e = html.escape
    graded = [r for r in results if r.report.outcome is Outcome.GRADED]
    columns = check_columns(results)
    rows = []
    for column in columns:
        statuses = [c.status for r in graded for c in r.report.checks if c.id == column]
        passed = sum(s is Status.PASSED for s in statuses)
        rate = 100 * passed / len(statuses) if statuses else 0.0
        messages = collections.Counter(
            c.message.splitlines()[0][:200]
            for r in graded
            for c in r.report.checks
            if c.id == column and c.status in (Status.FAILED, Status.ERROR) and c.message
        )
        common = "".join(
            f"<li><b>{count}×</b> {e(message)}</li>" for message, count in messages.most_common(3)
        )
        rows.append(
            f"<tr><td><code>{e(column)}</code></td><td>{passed}/{len(statuses)}</td>"
            f'<td><div class="bar"><span style="width:{rate:.0f}%"></span></div>'
            f"{rate:.0f}%</td><td><ul>{common}</ul></td></tr>"
        )
    students = "".join(_student(r) for r in results)
    mean = sum(r.report.score for r in graded) / len(graded) if graded else 0.0
    top = max((r.report.max_score for r in graded), default=0.0)
    passed_all = sum(r.report.passed for r in graded)
    not_graded = len(results) - len(graded)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(exercise.title)}: class results</title>
<style>{_STYLE}</style></head>
<body>
<h1>{e(exercise.title)} <small>({e(exercise.id)})</small></h1>
<p class="summary"><b>{len(results)}</b> submissions · <b>{passed_all}</b> passed every check
· mean score <b>{mean:.1f}</b> of {top:g}
· <b>{not_graded}</b> not graded</p>
<h2>Checks</h2>
<table><thead><tr><th>check</th><th>passed</th><th>rate</th><th>commonest failures</th></tr>
</thead><tbody>{"".join(rows)}</tbody></table>
<h2>Students</h2>
{students}
</body></html>
"""


def _student(result: StudentResult) -> str:
    e = html.escape
    report = result.report
    if report.outcome is not Outcome.GRADED:
        return (
            f'<details class="not-graded"><summary>{e(result.student)}: not graded</summary>'
            f"<p>{e(report.reason)}</p></details>"
        )
    items = []
    for check in report.checks:
        details = []
        if check.message:
            details.append(f"<p>{e(check.message)}</p>")
        if check.expected is not None:
            details.append(f"<p><b>expected:</b> <code>{e(check.expected)}</code></p>")
        if check.actual is not None:
            details.append(f"<p><b>arrived:</b> <code>{e(check.actual[:2000])}</code></p>")
        if check.hint and check.status in (Status.FAILED, Status.ERROR):
            details.append(f"<p><b>hint:</b> {e(check.hint)}</p>")
        items.append(
            f'<li class="{check.status.value}"><span class="glyph">'
            f"{_GLYPH[check.status]}</span> {e(check.description or check.name)} "
            f"<small>({check.points:g}/{check.max_points:g})</small>{''.join(details)}</li>"
        )
    verdict = "passed" if report.passed else "not passed"
    return (
        f"<details><summary>{e(result.student)}: {report.score:g}/{report.max_score:g} "
        f'({verdict})</summary><ul class="checks">{"".join(items)}</ul></details>'
    )


_GLYPH = {Status.PASSED: "✓", Status.FAILED: "✗", Status.SKIPPED: "–", Status.ERROR: "!"}

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;
color:#1d232a}
h1 small{color:#667;font-weight:normal}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #dde;padding:.4rem;
text-align:left;vertical-align:top}
.bar{display:inline-block;width:6rem;height:.6rem;background:#eee;margin-right:.4rem}
.bar span{display:block;height:100%;background:#2a7}
details{border:1px solid #dde;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer;font-weight:600}
ul.checks{list-style:none;padding-left:.5rem}
td ul{margin:0;padding-left:1rem}
li.failed .glyph,li.error .glyph{color:#c22}li.passed .glyph{color:#2a7}
li.skipped .glyph{color:#a80}
.not-graded summary{color:#a60}
code{background:#f4f4f6;padding:0 .2rem;white-space:pre-wrap;word-break:break-word}
"""
