"""The errors bb raises and the exit codes they map to.

A learner's failing check is never an exception: it is a ``CheckResult`` with status
``failed``. Exceptions are for things that stop bb from grading at all, and their type says
whose move it is: the learner's (``UserError``), the machine's (``EnvironmentProblem``), or
the course author's (``ContentError``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bb.results.report import GradeReport


class ExitCode(enum.IntEnum):
    """Process exit statuses. A value is never reused for another meaning."""

    #: Everything asked for was done; every check passed.
    OK = 0
    #: Grading ran, and at least one check did not pass.
    CHECKS_FAILED = 1
    #: The command line was wrong (Click's own code for usage errors).
    USAGE = 2
    #: The machine lacks something bb needs: a Docker engine, an image, a free port.
    ENVIRONMENT = 3
    #: The course or pack is broken: a bad manifest, template or grader.
    CONTENT = 4
    #: bb itself failed unexpectedly: a bug to report.
    INTERNAL = 5
    #: Stopped by SIGHUP (128 + 1): the terminal was closed.
    HANGUP = 129
    #: Interrupted with Ctrl-C (128 + SIGINT).
    INTERRUPTED = 130
    #: Stopped by SIGTERM (128 + 15).
    TERMINATED = 143


class BBError(Exception):
    """Base of every error bb expects; carries a one-sentence message and a fix."""

    exit_code = ExitCode.INTERNAL

    def __init__(
        self, message: str, hint: str | None = None, *, report: GradeReport | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: What a grade had found out when this stopped it, shown before the error.
        self.report = report


class UserError(BBError):
    """Something the learner can fix: a bad path, an unknown exercise, a missing workspace."""

    exit_code = ExitCode.USAGE


class EnvironmentProblem(BBError):
    """The machine lacks something: no Docker engine, a missing image, no free port."""

    exit_code = ExitCode.ENVIRONMENT


class ContentError(BBError):
    """The course or pack is broken: our bug (or the instructor's), never the learner's."""

    exit_code = ExitCode.CONTENT
