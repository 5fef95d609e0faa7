"""Grade reports: the verdict, the JSON document, and the terminal rendering."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from bb.results.report import RESULT_VERSION, CheckResult, GradeReport, Status, render, to_json


def _report(*statuses: Status) -> GradeReport:
    checks = tuple(
        CheckResult(
            name=f"c{i}",
            description=f"check {i}",
            status=s,
            message="GET /x should answer 201, not 404." if s is Status.FAILED else "",
            expected="201" if s is Status.FAILED else None,
            actual="GET /x → 404" if s is Status.FAILED else None,
            hint="Creates return 201." if s is Status.FAILED else None,
        )
        for i, s in enumerate(statuses)
    )
    return GradeReport(
        exercise="ex", title="Ex", checks=checks, duration=1.5, timings={"build": 1.0}
    )


def test_verdict() -> None:
    assert _report(Status.PASSED, Status.PASSED).passed
    assert not _report(Status.PASSED, Status.SKIPPED).passed  # a skipped check proved nothing
    assert not _report(Status.PASSED, Status.FAILED).passed
    assert not _report(Status.PASSED, Status.ERROR).passed
    assert not _report(Status.SKIPPED).passed
    assert not _report().passed


def test_json_document() -> None:
    document = to_json(_report(Status.PASSED, Status.FAILED))
    assert document["bb_result_version"] == RESULT_VERSION
    assert document["passed"] is False
    assert document["summary"] == {"passed": 1, "failed": 1, "skipped": 0, "error": 0}
    failed = document["checks"][1]
    assert failed["status"] == "failed"
    assert failed["expected"] == "201"
    assert failed["hint"] == "Creates return 201."
    assert set(failed) >= {"name", "status", "message", "hint"}


def _text(report: GradeReport, *, verbose: bool = False) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=80, no_color=True, force_terminal=False).print(
        render(report, verbose=verbose)
    )
    return buffer.getvalue()


def test_rendering_reads_without_colour() -> None:
    text = _text(_report(Status.PASSED, Status.FAILED, Status.SKIPPED))
    assert "✓ passed  check 0" in text
    assert "✗ failed  check 1" in text
    assert "– skipped check 2" in text
    assert "expected: 201" in text
    assert "arrived:  GET /x → 404" in text
    assert "hint: Creates return 201." in text
    assert "1 passed, 1 failed, 1 skipped" in text


def test_a_repeated_cause_is_detailed_once() -> None:
    report = _report(Status.FAILED, Status.FAILED)
    text = _text(report)
    assert text.count("arrived:") == 1
    assert "(as in: check 0)" in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_passed_checks_stay_short_unless_verbose() -> None:
    report = GradeReport(
        exercise="ex",
        title="Ex",
        duration=1.0,
        timings={},
        checks=(
            CheckResult(name="a", description="check a", status=Status.PASSED, message="detail"),
        ),
    )
    assert "detail" not in _text(report)
    assert "detail" in _text(report, verbose=True)
    assert "All checks passed." in _text(report)


def test_pack_text_reaches_the_learner_exactly() -> None:
    from bb.cli.views import numbered

    hint = "BIGINT stops at 2**63-1; use `icontains(term, autoescape=True)` and *escape* _ too."
    console = Console(file=io.StringIO(), width=200, no_color=True)
    console.print(numbered([hint]))
    assert console.file.getvalue() == f"1. {hint}\n"  # type: ignore[attr-defined]


def test_the_isolation_level_is_in_the_document_and_named_when_not_the_default() -> None:
    standard = _report(Status.PASSED)
    assert to_json(standard)["isolation"] == "standard"
    assert "isolation" not in _text(standard)
    strict = dataclasses.replace(standard, isolation="strict")
    assert to_json(strict)["isolation"] == "strict"
    assert "1 passed in 1.5 s (strict isolation)" in _text(strict)
