"""Isolation levels of a grade: how far the code being graded is fenced in.

Kept free of heavy imports: the command line builds its ``--isolation`` option from it.
"""

from __future__ import annotations

import enum

#: The environment variable that chooses the level when ``--isolation`` is not given.
ENV = "BB_ISOLATION"


class Isolation(enum.StrEnum):
    #: The app and its build run as their image says (root, writable filesystem), on a network
    #: with internet access that also reaches this machine's services. Right for a learner
    #: grading their own code on their own machine.
    STANDARD = "standard"
    #: For strangers' code (class grading): the app, its migrations and its services sit on an
    #: internal network with no way out, neither to the internet nor to this machine; only
    #: bb's relay joins them to the ports published on 127.0.0.1. The learner's containers run
    #: as uid 65534 with a read-only root filesystem (tmpfs /tmp), no capabilities and
    #: no-new-privileges; the build has no network unless the exercise allows it.
    STRICT = "strict"
