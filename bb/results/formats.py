"""Result formats: one grade report, written for the tools instructors already use.

``json`` is bb's own versioned document (:func:`bb.results.report.to_json`); ``junit`` is JUnit
XML as GitLab and Jenkins read it; ``gradescope`` and ``prairielearn`` are those platforms'
``results.json``. Files are written atomically, and every text that came from a learner's app
is capped, so one flood cannot make a result file too big to upload.
"""

from __future__ import annotations

import enum
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from bb.results.report import CheckResult, GradeReport, Outcome, Status, hint_label, to_json

#: No single check's output grows past this; the cut is said in the text.
MAX_CHECK_OUTPUT = 16 * 1024
#: Nor does a whole file (platforms refuse or truncate large results files).
MAX_FILE_BYTES = 1024 * 1024


class Format(enum.StrEnum):
    JSON = "json"
    JUNIT = "junit"
    GRADESCOPE = "gradescope"
    PRAIRIELEARN = "prairielearn"

    @property
    def platform(self) -> bool:
        """Whether the format feeds a grading platform, which expects exit 0 whenever grading
        finished (a failing learner is a score, not an error)."""
        return self in (Format.GRADESCOPE, Format.PRAIRIELEARN)


def render(report: GradeReport, fmt: Format) -> str:
    """The text of ``report`` in ``fmt``; long outputs are cut (with a note) until the whole
    fits in :data:`MAX_FILE_BYTES`."""
    text = _render(report, fmt)
    for limit in (MAX_CHECK_OUTPUT, 2048, 256):
        if len(text.encode()) <= MAX_FILE_BYTES:
            break
        text = _render(_capped(report, limit), fmt)
    return text


def _render(report: GradeReport, fmt: Format) -> str:
    if fmt is Format.JUNIT:
        return to_junit(report)
    document = {
        Format.JSON: to_json,
        Format.GRADESCOPE: to_gradescope,
        Format.PRAIRIELEARN: to_prairielearn,
    }[fmt](report)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def not_graded(exercise: str, title: str, reason: str) -> GradeReport:
    """A report that says grading could not finish, for the formats that must say so."""
    return GradeReport(
        exercise=exercise,
        title=title,
        checks=(),
        duration=0.0,
        timings={},
        outcome=Outcome.NOT_GRADED,
        reason=reason,
    )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(staged).replace(path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise


# -- the formats -----------------------------------------------------------------------------


def check_output(check: CheckResult, limit: int = MAX_CHECK_OUTPUT) -> str:
    """Everything a learner should read about a check, as plain text."""
    parts = []
    if check.message:
        parts.append(check.message)
    if check.expected is not None:
        parts.append(f"expected: {check.expected}")
    if check.actual is not None:
        parts.append(f"arrived:  {check.actual}")
    if check.log:
        parts.append(f"last log lines:\n{check.log.rstrip()}")
    if check.hint and check.status in (Status.FAILED, Status.ERROR):
        parts.append(f"{hint_label(check)}{check.hint}")
    return _cut(_plain("\n".join(parts)), limit)


def to_gradescope(report: GradeReport) -> dict[str, Any]:
    """Gradescope's ``results.json`` (score, execution_time, output, tests[])."""
    return {
        "score": report.score,
        "execution_time": round(report.duration, 3),
        "output": _summary(report),
        "tests": [
            {
                "name": _plain(check.description or check.name),
                "number": str(number),
                "score": check.points,
                "max_score": check.max_points,
                "status": "passed" if check.status is Status.PASSED else "failed",
                "output": (f"{check.status.value}\n" + check_output(check)).rstrip(),
                "visibility": check.visibility,
                "tags": [check.id],
            }
            for number, check in enumerate(report.checks, 1)
        ],
    }


def to_prairielearn(report: GradeReport) -> dict[str, Any]:
    """PrairieLearn's external-grader ``results.json`` (gradable, score 0..1, tests[])."""
    if report.outcome is Outcome.NOT_GRADED:
        return {
            "gradable": False,
            "message": _plain(report.reason),
            "output": _plain(report.reason),
            "tests": [],
        }
    return {
        "gradable": True,
        "score": report.score / report.max_score if report.max_score else 0.0,
        "message": _summary(report),
        "output": "",
        "tests": [
            {
                "name": _plain(check.description or check.name),
                "description": check.id,
                "points": check.points,
                "max_points": check.max_points,
                "message": check.status.value,
                "output": check_output(check),
            }
            for check in report.checks
            if check.visibility == "visible"  # PrairieLearn shows every test it is given
        ],
    }


def to_junit(report: GradeReport) -> str:
    """JUnit XML: one testsuite for the exercise, one testcase per check."""
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name=f"bb.{report.exercise}",
        tests=str(len(report.checks) or 1),
        failures=str(report.count(Status.FAILED)),
        errors=str(report.count(Status.ERROR) + (report.outcome is Outcome.NOT_GRADED)),
        skipped=str(report.count(Status.SKIPPED)),
        time=f"{report.duration:.3f}",
    )
    for check in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"bb.{report.exercise}",
            name=check.id,
            time=f"{check.duration:.3f}",
        )
        output = check_output(check)
        message = _plain(check.message)[:500]
        if check.status is Status.FAILED:
            ET.SubElement(case, "failure", message=message, type="CheckFailed").text = output
        elif check.status is Status.ERROR:
            ET.SubElement(case, "error", message=message, type="CheckError").text = output
        elif check.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=message)
        if check.description:
            ET.SubElement(case, "system-out").text = _plain(check.description)
    if report.outcome is Outcome.NOT_GRADED:
        case = ET.SubElement(suite, "testcase", classname=f"bb.{report.exercise}", name="grading")
        ET.SubElement(case, "error", message=_plain(report.reason)[:500], type="NotGraded")
    suites = ET.Element("testsuites", name="bb")
    suites.append(suite)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


# -- helpers ---------------------------------------------------------------------------------

#: XML 1.0 cannot hold most C0 controls (JSON can, escaped; keep the formats alike), and no
#: platform shows terminal escapes usefully.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _plain(text: str) -> str:
    return _CONTROL.sub("", text)


def _cut(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[: limit - 64].decode("utf-8", "ignore")
    return f"{kept}\n[… {len(data) - len(kept.encode())} more bytes cut]"


def _summary(report: GradeReport) -> str:
    counts = ", ".join(
        f"{report.count(s)} {s.value}" for s in Status if report.count(s) or s is Status.PASSED
    )
    verdict = "All checks passed." if report.passed else "Some checks did not pass."
    return f"{report.title} ({report.exercise}): {verdict} {counts}."


def _capped(report: GradeReport, limit: int) -> GradeReport:
    import dataclasses

    checks = tuple(
        dataclasses.replace(
            check,
            message=_cut(check.message, limit),
            expected=None if check.expected is None else _cut(check.expected, limit),
            actual=None if check.actual is None else _cut(check.actual, limit),
            log=None if check.log is None else _cut(check.log, limit),
        )
        for check in report.checks
    )
    return dataclasses.replace(report, checks=checks)
