"""Runs inside the learner's app image, as ``python -c <this file> <plan as JSON>``.

It runs a plan of alembic commands in ONE Python process: starting Python and importing
SQLAlchemy and the app costs a second or more per process (many more on a busy machine), and a
check needs several commands. Between commands, a ``pause`` step hands control to the grader,
which inspects or fills the database and then lets the plan go on. The two talk over Postgres
LISTEN/NOTIFY on the database being migrated: no ports, no shared files.

Each step's result is one line on stdout: ``@@bb-step@@ {json}``. The plan stops at the first
alembic command that fails. This file imports nothing from the grader or from bb: the image
holds only the learner's project and the course's libraries.
"""

import contextlib
import io
import json
import os
import sys
import traceback
import types

PREFIX = "@@bb-step@@ "
#: Channels: the driver says where it paused on the first, the grader says "go" on the second.
DRIVER_CHANNEL = "bb_driver"
GRADER_CHANNEL = "bb_grader"
PAUSE_LIMIT = 120.0


def emit(**record):
    sys.__stdout__.write(PREFIX + json.dumps(record) + "\n")
    sys.__stdout__.flush()


def run_alembic(args):
    from alembic.config import main

    captured = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        try:
            main(argv=list(args), prog="alembic")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # the learner's migration raised: report it like the CLI would
            traceback.print_exc()
            code = 1
    return code, captured.getvalue()


def forget_models():
    """Make ``app.models`` an empty module, as if the models had moved on since the migrations
    were written: a migration that imports them fails, one that describes its tables runs."""
    import app  # noqa: F401  (the package itself stays real)

    sys.modules["app.models"] = types.ModuleType("app.models")


def main(plan):
    import psycopg

    conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    conn.execute(f"LISTEN {GRADER_CHANNEL}")
    if plan.get("forget_models"):
        forget_models()
    for index, step in enumerate(plan["steps"]):
        if "pause" in step:
            conn.execute("SELECT pg_notify(%s, %s)", (DRIVER_CHANNEL, step["pause"]))
            word = next((n.payload for n in conn.notifies(timeout=PAUSE_LIMIT, stop_after=1)),
                        "timeout")
            emit(step=index, pause=step["pause"], then=word)
            if word != "go":  # the grader has seen enough (a check failed), or is gone
                return 0
            continue
        code, output = run_alembic(step["alembic"])
        emit(step=index, alembic=step["alembic"], exit=code, output=output[-6000:])
        if code != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
