"""The class's files: grades.csv for a gradebook, and a report page any browser opens offline."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from bb.grading.classroom import StudentResult
from bb.pack.manifest import load_pack
from bb.results.class_report import grades_csv, html_report
from bb.results.formats import not_graded
from bb.results.report import CheckResult, GradeReport, Status, weighed
from tests.conftest import MINI_PACK, _docker_required


def _results() -> list[StudentResult]:
    def report(hello: Status, message: str = "") -> GradeReport:
        checks = (
            CheckResult("build", "image builds", Status.PASSED),
            CheckResult("health", "GET /health answers 200", Status.PASSED),
            CheckResult("hello", "GET /hello answers hi", hello, message=message,
                        expected="200", actual="GET /hello → 404 <script>alert(1)</script>",
                        hint="Add /hello to ROUTES in answers.py."),
        )  # fmt: skip
        return GradeReport("hello", "Say hello", tuple(weighed(c, {}, {}) for c in checks), 1, {})

    return [
        StudentResult("ada", "d1", report(Status.PASSED), 1),
        StudentResult("=cmd|' /C calc'!A0", "d2", report(Status.FAILED, "GET /hello → 404"), 1),
        StudentResult("linus", "d3", report(Status.FAILED, "GET /hello → 404"), 1),
        StudentResult("ghost", "", not_graded("hello", "Say hello", "environment: no engine"), 3),
    ]


def test_grades_csv_has_a_column_per_check_and_no_formulas() -> None:
    rows = list(csv.DictReader(io.StringIO(grades_csv(_results()))))
    assert list(rows[0]) == [
        "student", "build", "health", "hello", "total", "max", "percent", "outcome",
    ]  # fmt: skip
    assert (rows[0]["total"], rows[0]["max"], rows[0]["percent"]) == ("2", "2", "100.0")
    assert rows[1]["student"].startswith("'=")  # a spreadsheet would run it otherwise
    assert rows[3]["outcome"] == "not-graded: environment: no engine"


def test_the_report_escapes_learner_text_and_counts_failures() -> None:
    page = html_report(load_pack(MINI_PACK).exercise("hello"), _results())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert "<b>2×</b> GET /hello → 404" in page  # the commonest failure, counted
    assert "1/3" in page  # one of three graded students passed hello


def test_the_report_opens_in_a_real_browser_offline(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if _docker_required():
            pytest.fail("chromium is required here (apt-get install chromium)")
        pytest.skip("no chromium installed")
    page = tmp_path / "report.html"
    page.write_text(html_report(load_pack(MINI_PACK).exercise("hello"), _results()))
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )  # fmt: skip
    assert "linus" in dom.stdout and "Say hello" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 10_000
