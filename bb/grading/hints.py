"""Hints that escalate per check.

A check's hint may have several levels, shortest first (``@hint("short", "deeper")`` in a
grader). The first time a check fails, the learner sees its first level; each later grade of
the exercise in which it fails again shows the next, up to the last. What was shown is kept in
the progress store (:class:`bb.progress.RevealedHint`); this module only decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from bb.progress import RevealedHint
from bb.results.report import STAGES, GradeReport, Status

#: The statuses whose hint the learner reads (a skipped check says why it did not run).
_SHOWN = (Status.FAILED, Status.ERROR)


def escalate(
    report: GradeReport, revealed: Mapping[str, RevealedHint], *, advance: bool = True
) -> tuple[GradeReport, list[RevealedHint]]:
    """``report`` with each failed check's hint at the level the learner is due, and what to
    keep of it.

    With ``advance`` (a grade that reached its verdict) a check that failed before shows one
    level more than last time; without (a grade stopped by the machine or the course), it
    shows the level already seen, and nothing is to be kept. Stages keep their one hint.
    """
    checks = []
    shown: list[RevealedHint] = []
    for check in report.checks:
        levels = check.hint_levels
        if check.status not in _SHOWN or not levels or check.name in STAGES:
            checks.append(check)
            continue
        before = revealed.get(check.name)
        seen = before.level if before is not None else 0
        level = min(seen + 1 if advance else max(seen, 1), len(levels))
        checks.append(
            dataclasses.replace(check, hint=levels[level - 1], hints=levels, hint_level=level)
        )
        if advance:
            shown.append(RevealedHint(check.name, check.description, level, levels))
    return dataclasses.replace(report, checks=tuple(checks)), shown
