"""Result formats: bb's document (v2, reading v1), JUnit XML, Gradescope and PrairieLearn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jsonschema_rs
import pytest

from bb.results.formats import MAX_FILE_BYTES, Format, not_graded, render, write_atomically
from bb.results.report import CheckResult, GradeReport, Status, from_json, weighed

SCHEMAS = Path(__file__).parent / "schemas"


def _report(huge: str = "") -> GradeReport:
    checks = [
        CheckResult("build", "your app's image builds", Status.PASSED),
        CheckResult("create_post", "POST /posts answers 201", Status.PASSED, duration=0.2),
        CheckResult(
            "replace_post", "PUT replaces the post", Status.FAILED,
            message="PUT /posts/1 should answer 200, not 500.", expected="200",
            actual="PUT /posts/1 → 500 \x1b[2J" + huge, hint="PUT replaces every field.",
        ),
        CheckResult("fuzz", "no 5xx", Status.SKIPPED, message="can't check until …"),
        CheckResult("restart", "survives a restart", Status.ERROR, message="setup broke"),
    ]  # fmt: skip
    points = {"replace_post": 3.0}
    visibility = {"fuzz": "after_due_date"}
    return GradeReport(
        exercise="rest-crud",
        title="Blog posts API",
        checks=tuple(weighed(c, points, visibility) for c in checks),
        duration=12.5,
        timings={"build": 1.0},
        provenance={"pack": {"id": "core", "digest": "abc"}, "bb_version": "0.1.0"},
    )


def _validate(schema: str, document: dict[str, Any]) -> None:
    jsonschema_rs.validate(json.loads((SCHEMAS / schema).read_text()), document)


def test_points_come_from_the_pack_and_stages_are_worth_nothing() -> None:
    report = _report()
    worth = {c.name: (c.points, c.max_points) for c in report.checks}
    assert worth == {
        "build": (0.0, 0.0),
        "create_post": (1.0, 1.0),
        "replace_post": (0.0, 3.0),
        "fuzz": (0.0, 1.0),
        "restart": (0.0, 1.0),
    }
    assert (report.score, report.max_score) == (1.0, 6.0)


def test_the_document_round_trips_and_version_1_is_still_read() -> None:
    report = _report()
    document = json.loads(render(report, Format.JSON))
    assert document["bb_result_version"] == 2
    assert document["outcome"] == "graded"
    assert document["pack"] == {"id": "core", "digest": "abc"}
    assert {c["id"] for c in document["checks"]} >= {"replace_post", "fuzz"}
    assert from_json(document) == report
    version_1 = {
        "bb_result_version": 1, "exercise": "e", "title": "E", "passed": False,
        "checks": [{"name": "build", "description": "d", "status": "passed"},
                   {"name": "hello", "description": "h", "status": "failed", "message": "no"}],
    }  # fmt: skip
    old = from_json(version_1)
    assert (old.score, old.max_score) == (0.0, 1.0)
    with pytest.raises(ValueError, match="known version"):
        from_json({"bb_result_version": 99, "checks": []})


def test_gradescope_results_follow_its_documented_fields() -> None:
    document = json.loads(render(_report(), Format.GRADESCOPE))
    _validate("gradescope-results.json", document)
    assert document["score"] == 1.0
    failed = next(t for t in document["tests"] if t["tags"] == ["replace_post"])
    assert (failed["score"], failed["max_score"], failed["status"]) == (0.0, 3.0, "failed")
    assert "expected: 200" in failed["output"] and "hint: PUT replaces" in failed["output"]
    assert "\x1b" not in failed["output"]
    hidden = next(t for t in document["tests"] if t["tags"] == ["fuzz"])
    assert hidden["visibility"] == "after_due_date"


def test_prairielearn_results_follow_its_documented_fields() -> None:
    document = json.loads(render(_report(), Format.PRAIRIELEARN))
    _validate("prairielearn-results.json", document)
    assert document["gradable"] is True
    assert document["score"] == pytest.approx(1 / 6)
    assert "fuzz" not in {t["description"] for t in document["tests"]}  # not visible yet
    down = json.loads(
        render(not_graded("rest-crud", "Blog", "Docker went away"), Format.PRAIRIELEARN)
    )
    _validate("prairielearn-results.json", down)
    assert down["gradable"] is False and "Docker went away" in down["message"]


def test_junit_xml_counts_each_kind_of_result() -> None:
    root = ET.fromstring(render(_report(), Format.JUNIT).encode())
    suite = root.find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5", "failures": "1", "errors": "1", "skipped": "1",
    }  # fmt: skip
    case = suite.find("testcase[@name='replace_post']")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None and "expected: 200" in (failure.text or "")
    down = ET.fromstring(render(not_graded("e", "E", "no engine"), Format.JUNIT).encode())
    assert down.find("testsuite/testcase/error[@type='NotGraded']") is not None


@pytest.mark.parametrize("fmt", list(Format))
def test_a_flood_in_one_check_is_cut_to_fit(fmt: Format, tmp_path: Path) -> None:
    text = render(_report(huge="x" * (5 * MAX_FILE_BYTES)), fmt)
    assert len(text.encode()) <= MAX_FILE_BYTES
    assert "more bytes cut" in text
    target = tmp_path / "out" / "results.json"
    write_atomically(target, text)
    assert target.read_text(encoding="utf-8") == text
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]


def test_an_output_path_that_cannot_be_written_is_a_clear_usage_error(tmp_path: Path) -> None:
    from bb.cli.app import _emit
    from bb.errors import UserError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write the result to"):
        _emit(_report(), Format.JUNIT, blocker / "junit.xml")
