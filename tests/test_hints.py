"""Hints that escalate per check, partial grades' patterns, and the live line of a grade: the
pure logic (the real grades that use them are in tests/test_feedback.py)."""

from __future__ import annotations

import pytest

from bb.cli.views import grade_status
from bb.grader import Failure, expect, hint, hint_levels
from bb.grader.plugin import selects
from bb.grading.hints import escalate
from bb.grading.runner import CheckStarted, check_selection
from bb.progress import RevealedHint
from bb.results.report import CheckResult, GradeReport, Selection, Status, render, to_json

# bb's own test session does not load the grader plugin, which registers the marker.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")

LEVELS = ("Look at the status code.", "Creates answer 201, not 200.", "status_code=201.")


def test_hint_takes_levels_and_one_text_stays_valid() -> None:
    assert hint("one").args == ("one",)
    assert hint(*LEVELS).args == LEVELS
    assert hint(LEVELS).args == LEVELS  # a constant of levels, unpacked or not
    assert hint("", "  ", "kept").args == ("kept",)
    with pytest.raises(TypeError):
        hint("")
    with pytest.raises(TypeError):
        hint_levels(["ok", 3])  # type: ignore[list-item]


def test_a_failure_carries_every_level_of_its_own_hint() -> None:
    with pytest.raises(Failure) as raised:
        expect(False, "no", hint=LEVELS)
    assert raised.value.hints == LEVELS
    assert raised.value.hint == LEVELS[0]
    assert Failure("no", hint="alone").hints == ("alone",)
    assert Failure("no").hint is None


def _failing(name: str = "create", levels: tuple[str, ...] = LEVELS) -> CheckResult:
    return CheckResult(
        name=name, description=f"{name} works", status=Status.FAILED, message="no",
        hint=levels[0] if levels else None, hints=levels,
    )  # fmt: skip


def _report(*checks: CheckResult, selection: Selection | None = None) -> GradeReport:
    return GradeReport("ex", "Ex", tuple(checks), 1.0, {}, selection=selection)


def test_each_failing_grade_shows_the_next_level_up_to_the_last() -> None:
    revealed: dict[str, RevealedHint] = {}
    seen = []
    for _ in range(4):
        report, shown = escalate(_report(_failing()), revealed)
        seen.append((report.checks[0].hint, report.checks[0].hint_level))
        revealed = {item.check: item for item in shown}
    assert seen == [(LEVELS[0], 1), (LEVELS[1], 2), (LEVELS[2], 3), (LEVELS[2], 3)]
    assert revealed["create"].seen == LEVELS and not revealed["create"].more


def test_passed_skipped_and_stage_checks_keep_their_hints_and_reveal_nothing() -> None:
    passed = CheckResult("read", "read works", Status.PASSED, hints=LEVELS)
    skipped = CheckResult("fuzz", "fuzz", Status.SKIPPED, message="blocked")
    stage = CheckResult("build", "builds", Status.FAILED, hint="Read the build log.")
    revealed = {"create": RevealedHint("create", "create works", 2, LEVELS)}
    report, shown = escalate(_report(stage, passed, skipped, _failing()), revealed)
    assert report.checks[:3] == (stage, passed, skipped)
    assert report.checks[3].hint == LEVELS[2]
    assert [(s.check, s.level) for s in shown] == [("create", 3)]


def test_a_grade_without_a_verdict_shows_what_was_seen_and_reveals_nothing() -> None:
    revealed = {"create": RevealedHint("create", "create works", 2, LEVELS)}
    report, shown = escalate(_report(_failing()), revealed, advance=False)
    assert (report.checks[0].hint, shown) == (LEVELS[1], [])
    first, _ = escalate(_report(_failing()), {}, advance=False)
    assert first.checks[0].hint_level == 1


def test_a_check_whose_levels_shrank_shows_its_last() -> None:
    revealed = {"create": RevealedHint("create", "create works", 3, LEVELS)}
    report, shown = escalate(_report(_failing(levels=("only",))), revealed)
    assert (report.checks[0].hint, shown[0].level) == ("only", 1)


def test_the_report_carries_the_hint_shown_and_its_level() -> None:
    report, _ = escalate(_report(_failing()), {"create": RevealedHint("create", "", 1, LEVELS)})
    check = to_json(report)["checks"][0]
    assert (check["hint"], check["hint_level"], check["hint_levels"]) == (LEVELS[1], 2, 3)
    text = _plain(render(report))
    assert f"hint 2/3: {LEVELS[1]}" in text
    single = to_json(_report(_failing(levels=("only",))))["checks"][0]
    assert (single["hint"], single["hint_level"], single["hint_levels"]) == ("only", 1, 1)
    assert "hint: only" in _plain(render(_report(_failing(levels=("only",)))))


def _plain(renderable: object) -> str:
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, no_color=True)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("pattern", "chosen"),
    [
        ("create", {"create_post", "create_rejects_bad_input"}),
        ("CREATE and not bad", {"create_post"}),
        ("test_read_post", {"read_post"}),
        ("read or delete", {"read_post", "delete_post"}),
        ("(post and not read) and not create", {"delete_post"}),
        ("nothing", set()),
        # a word matches check names only, never the module or a marker
        ("test_posts", set()),
        ("bb_hint", set()),
    ],
)
def test_k_selects_on_check_names_as_pytest_would(pattern: str, chosen: set[str]) -> None:
    names = {"create_post", "create_rejects_bad_input", "read_post", "delete_post"}
    assert {n for n in names if selects(pattern, n)} == chosen


@pytest.mark.parametrize("pattern", ["", "  ", "a and (", "not", "a b"])
def test_a_pattern_that_is_not_an_expression_is_a_usage_error(pattern: str) -> None:
    from bb.errors import UserError

    with pytest.raises(UserError, match="-k"):
        check_selection(pattern)


def test_a_partial_grade_never_passes_and_says_what_it_left_out() -> None:
    passed = CheckResult("read", "read works", Status.PASSED)
    report = _report(passed, selection=Selection("read", ("create", "delete")))
    assert report.all_ran_passed and not report.passed
    document = to_json(report)
    assert document["passed"] is False
    assert document["filter"] == {"pattern": "read", "left_out": ["create", "delete"]}
    text = _plain(render(report))
    assert "Partial grade (-k read, 2 checks left out): the chosen checks passed." in text
    assert "never passes the exercise" in text
    assert to_json(_report(passed))["filter"] is None


def test_the_live_line_names_a_check_running_for_two_seconds_or_more() -> None:
    running = CheckStarted("restart", "the app serves again after a restart", at=100.0)
    assert grade_status("running the checks", None, 500.0).plain == "running the checks"
    assert grade_status("running the checks", running, 101.9).plain == "running the checks"
    assert (
        grade_status("running the checks", running, 107.4).plain
        == "running the app serves again after a restart for 7 s"
    )
    hostile = CheckStarted("x", "a \x1b[2J[red]check", at=0.0)
    assert grade_status("", hostile, 3.0).plain == "running a [red]check for 3 s"
