"""Checks for schema-and-migrations: a movie-reservation schema the database itself enforces,
built by reversible, data-preserving Alembic migrations.

Where the checks run:

- Migration checks (roundtrip, drift, data migration) need an *empty* database, not the one the
  app uses: the grader creates a scratch database in the grade's Postgres for each of them
  (``CREATE DATABASE``, dropped afterwards) and runs the learner's ``alembic`` in a one-off
  container of their app image, with ``DATABASE_URL`` pointing at it (see ``oneoff.py``).
  The app's own database, migrated by bb before the app started, stays untouched.
- Rule checks (constraints, exclusion, money types) send raw SQL to the app's database as the
  superuser, and read the error's SQLSTATE: the database must refuse, not the app.
- The conflict check talks HTTP to the app.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import random
import re
import secrets
import string
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from oneoff import RunResult, run_in_app_image

from bb.grader import Failure, Outcome, burst, describe, expect, expect_problem, hint, json_body

# --- hints --------------------------------------------------------------------------------

# Each hint used in @hint may be its levels, shortest first: a check that fails again on a
# later grade shows the next one (bb hint --next CHECK reveals it on request).
MIGRATIONS = (
    "Schema changes belong in versioned migrations with `upgrade` and `downgrade`, never in "
    "create_all() at startup: `alembic upgrade head` on an empty database must build every "
    "table, and `alembic downgrade base` must remove every one, children before parents.",
    "The grader upgrades an empty database to head, downgrades it to base and upgrades it "
    "again, reading the tables at each step. Remove any `Base.metadata.create_all()` (it "
    "hides a migration that builds nothing), and give each migration a downgrade that "
    "undoes exactly its upgrade in reverse order: `op.drop_table(\"reservations\")` before "
    "the seats, showtimes and users it points at, since a foreign key stops a parent table "
    "from being dropped first.",
)
DRIFT = (
    "Your models and your migrations must describe the same schema: same tables, columns, "
    "types, nullability, unique constraints and indexes (with the same names). Run "
    "`alembic check` against a database you just upgraded, and fix whichever side is wrong."
)
NO_MODEL_IMPORTS = (
    "A migration must still run a year from now. Don't import models into it; describe the "
    "tables explicitly."
)
EXPAND_BACKFILL_CONTRACT = (
    "Split a column by expand, backfill, contract: add the new columns nullable, fill them "
    "from the old one with one UPDATE, then set NOT NULL and drop the old column. Dropping "
    "first loses the data; a server_default of '' only hides that.",
    "In the last migration's upgrade, in this order: `op.add_column(\"users\", "
    "sa.Column(\"first_name\", sa.Text(), nullable=True))` and its siblings; one "
    "`op.execute(\"UPDATE users SET first_name = ..., last_name = ..., ...\")` that splits "
    "name as README.md says, in SQL (strpos, left, substr), never through the app's models "
    "(they will have changed by the time the migration runs elsewhere); "
    "`op.alter_column(..., nullable=False)`; and only then `op.drop_column(\"users\", "
    "\"name\")`. The downgrade rebuilds name from the two.",
)
DB_ENFORCES = (
    "Let the database enforce invariants (UNIQUE, FK, CHECK, EXCLUDE); the app maps "
    "violations to 409 or 422."
)
PARTIAL_UNIQUE = (
    "Only *active* reservations compete for a seat: use a partial unique index, "
    "CREATE UNIQUE INDEX ... ON reservations (showtime_id, seat_id) WHERE status = 'active'. "
    "A plain UNIQUE (showtime_id, seat_id) also counts cancelled ones."
)
EXCLUSION = (
    "Overlapping showtimes need an exclusion constraint: CREATE EXTENSION btree_gist, then "
    "EXCLUDE USING gist (auditorium_id WITH =, during WITH &&). A check in Python can't see "
    "a concurrent insert, or a row written by anything other than your app.",
    "In the migration: `op.execute(\"CREATE EXTENSION IF NOT EXISTS btree_gist\")` (gist "
    "cannot compare plain integers with = without it), then `op.execute(\"ALTER TABLE "
    "showtimes ADD CONSTRAINT showtimes_no_overlap EXCLUDE USING gist (auditorium_id WITH =, "
    "during WITH &&)\")`, with `during` a tstzrange built '[)' so that one showtime may "
    "start exactly when the last one ends. A violation is SQLSTATE 23P01.",
)
MONEY = (
    "Use integer cents or `numeric`; floats can't represent 0.10 exactly.",
    "A float or real column stores 0.1 as 0.1000000000000000055…, and sums of prices drift "
    "by cents. Declare price columns as `sa.Integer()` holding cents (price_cents) or "
    "`sa.Numeric(10, 2)`, in the model and the migration alike, and never pass money through "
    "a Python float on the way.",
)
CONFLICT = (
    "Don't check 'is the seat free?' in Python and hope: insert, and let the unique index "
    "refuse. Catch sqlalchemy.exc.IntegrityError and map its SQLSTATE (exc.orig.sqlstate): "
    "23505 on the active-seat index → 409, 23503 (a missing user, showtime or seat) → 422.",
    "Two requests for the same seat can both see it free before either inserts: only the "
    "database sees both. Wrap `session.add(reservation); session.commit()` in `try: ... "
    "except IntegrityError as exc:`, roll the session back, and raise HTTPException(409) "
    "when `exc.orig.sqlstate == \"23505\"` (and the constraint is the active-seat index), "
    "HTTPException(422) when it is 23503. An IntegrityError left uncaught is a 500.",
)
CONTRACT = (
    "The grader writes to the tables named in README.md with exactly those columns: keep "
    "their names, and give any column you add a default."
)

# --- the contract --------------------------------------------------------------------------

#: Tables and the columns the grader writes or reads at head (README.md, "The schema").
SCHEMA: dict[str, tuple[str, ...]] = {
    "users": ("id", "first_name", "last_name", "email", "email_normalized"),
    "movies": ("id", "title", "duration_minutes"),
    "auditoriums": ("id", "name"),
    "seats": ("id", "auditorium_id", "row_label", "number"),
    "showtimes": ("id", "movie_id", "auditorium_id", "during", "price_cents"),
    "reservations": ("id", "user_id", "showtime_id", "seat_id", "status"),
}
SQLSTATE_NAMES = {
    "23502": "not_null_violation",
    "23503": "foreign_key_violation",
    "23505": "unique_violation",
    "23514": "check_violation",
    "23P01": "exclusion_violation",
}
#: Column names that hold money; their type must be exact.
MONEY_NAME = re.compile(r"(^|_)(price|cost|amount|total|fee|cents)($|_)")
EXACT_TYPES = ("integer", "bigint", "numeric")
#: Where the app's containers reach the Postgres service (exercise.yaml: services.db).
DB_IN_NETWORK = "db:5432"

#: Limit for one plan of alembic commands (one container, one Python process). Measured for the
#: reference, roundtrip plan (4 commands) and data-migration plan (3 commands over 5,000 users):
#: 70 s and 60 s on a 2-core machine running ~30 other processes' worth of load, so 180 s
#: keeps 2.5x headroom there.
MIGRATION_TIMEOUT = 180.0
DRIVER_CHANNEL, GRADER_CHANNEL = "bb_driver", "bb_grader"
#: What a migration that imports app.models prints once app.models is empty.
MODEL_IMPORT_SIGNS = ("ImportError", "cannot import name", "has no attribute")
#: Users loaded before the data migration (spec: 5,000); COPY loads them in well under 1 s.
DATA_MIGRATION_USERS = 5_000
#: Simultaneous bookings of one seat in the conflict check.
RACERS = 8
#: How long the race waits for every racer to queue at its INSERT before letting them write.
#: Measured for the reference: all 8 queue within 1-3 s on the loaded 2-core machine.
RACE_GATHER = 20.0
#: Limit for each racing request. Measured for the reference: the whole conflict check took
#: 17 s on the loaded 2-core machine (under 1 s idle).
BURST_TIMEOUT = 60.0


# --- scratch databases and alembic --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScratchDatabase:
    name: str
    #: The URL the app's containers use (host ``db``), for DATABASE_URL.
    url: str
    #: A superuser connection from the grader, for introspection and fixtures.
    conn: psycopg.Connection[Any]


@contextlib.contextmanager
def scratch_database(stack: Any, db: psycopg.Connection[Any]) -> Iterator[ScratchDatabase]:
    """A new, empty database in the grade's Postgres, dropped on the way out."""
    name = f"bb_scratch_{secrets.token_hex(4)}"
    db.execute(f'CREATE DATABASE "{name}"')
    host_dsn = urlsplit(stack.dsn("db"))
    credentials = host_dsn.netloc.rsplit("@", 1)[0]
    try:
        with psycopg.connect(host_dsn._replace(path=f"/{name}").geturl(),
                             autocommit=True) as conn:
            yield ScratchDatabase(name, f"postgresql://{credentials}@{DB_IN_NETWORK}/{name}",
                                  conn)
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: Runs alembic commands in the app's image, several in one Python process (see its docstring).
DRIVER_SOURCE = (Path(__file__).parent / "alembic_driver.py").read_text(encoding="utf-8")
STEP_PREFIX = "@@bb-step@@ "


@dataclasses.dataclass(frozen=True)
class Step:
    """One alembic command the driver ran: its arguments, exit status and output."""

    args: tuple[str, ...]
    exit_code: int | None
    output: str

    @property
    def command(self) -> str:
        return "alembic " + " ".join(self.args)


class MigrationRun:
    """A plan of alembic commands running in a one-off container, with pauses for the grader.

    ``steps`` mixes alembic argument lists and pause names (strings). At a pause, the driver
    waits until :meth:`resume`; :meth:`reached` tells whether it got there (it stops at the
    first failing command). Leaving the ``with`` block stops the plan, wherever it is.
    """

    def __init__(self, stack: Any, scratch: ScratchDatabase, steps: Sequence[list[str] | str],
                 *, forget_models: bool = False) -> None:
        self._conn = scratch.conn
        self._conn.execute(f"LISTEN {DRIVER_CHANNEL}")
        plan = {
            "forget_models": forget_models,
            "steps": [{"pause": step} if isinstance(step, str) else {"alembic": step}
                      for step in steps],
        }
        command = ["env", f"DATABASE_URL={scratch.url}", "python", "-c", DRIVER_SOURCE,
                   json.dumps(plan)]
        self._result: RunResult | None = None
        self._deadline = time.monotonic() + MIGRATION_TIMEOUT
        self._thread = threading.Thread(
            target=self._run, args=(stack, command), name="alembic-driver", daemon=True
        )
        self._thread.start()

    def _run(self, stack: Any, command: list[str]) -> None:
        self._result = run_in_app_image(stack, command, timeout=MIGRATION_TIMEOUT)

    def __enter__(self) -> MigrationRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.resume("stop")
        self._thread.join(timeout=max(self._deadline - time.monotonic(), 0) + 30)

    def reached(self, pause: str) -> bool:
        """Wait until the driver pauses at ``pause`` (True), or ends or runs out of time."""
        while time.monotonic() < self._deadline:
            for notice in self._conn.notifies(timeout=0.25, stop_after=1):
                if notice.payload == pause:
                    return True
            if not self._thread.is_alive():
                return False
        return False

    def resume(self, word: str = "go") -> None:
        self._conn.execute("SELECT pg_notify(%s, %s)", (GRADER_CHANNEL, word))

    def steps(self) -> list[Step]:
        """Every alembic command run so far (waits for the container to end)."""
        self._thread.join(timeout=max(self._deadline - time.monotonic(), 0) + 30)
        output = self._result.output if self._result is not None else ""
        steps = []
        for line in output.splitlines():
            if line.startswith(STEP_PREFIX):
                record = json.loads(line[len(STEP_PREFIX):])
                if "alembic" in record:
                    steps.append(Step(tuple(record["alembic"]), record["exit"],
                                      record["output"]))
        return steps

    def failure(self, stage: str) -> Failure:
        """Why the plan did not get past ``stage``: the failing command and its output."""
        steps = self.steps()
        failed = next((step for step in steps if step.exit_code != 0), None)
        if failed is not None:
            return Failure(f"`{failed.command}` failed {stage}.", expected="exit status 0",
                           actual=tail(failed.output))
        exit_code = self._result.exit_code if self._result is not None else None
        if exit_code is None:
            return Failure(f"The migrations did not finish within {MIGRATION_TIMEOUT:g} s "
                           f"{stage}.", actual=tail(self._result.output if self._result else ""))
        return Failure(f"The alembic commands could not run {stage} (the one-off container "
                       f"exited with status {exit_code}).",
                       actual=tail(self._result.output if self._result else ""))


def tail(output: str, lines: int = 12) -> str:
    kept = [line for line in output.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "(no output)"


def user_tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return {name if schema == "public" else f"{schema}.{name}" for schema, name in rows}


def columns_of(conn: psycopg.Connection[Any], table: str) -> dict[str, tuple[str, bool]]:
    """column → (data_type, nullable) for a table in schema public."""
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(name): (str(kind), bool(nullable)) for name, kind, nullable in rows}


def listing(names: Sequence[str] | set[str]) -> str:
    return ", ".join(sorted(names)) or "none"


# --- raw SQL against the app's database -------------------------------------------------


def token(rng: random.Random, k: int = 8) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=k))


def insert(db: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> int:
    """Run a contract INSERT ... RETURNING id that must work; explain it if it does not."""
    try:
        row = db.execute(sql, params).fetchone()
    except psycopg.Error as exc:
        raise Failure(
            f"The grader could not set up its data: `{sql}` with {list(params)} failed with "
            f"SQLSTATE {exc.sqlstate}: {str(exc).strip()}",
            hint=CONTRACT,
        ) from None
    assert row is not None
    return int(row[0])


def sqlstate_of(db: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> str | None:
    """The SQLSTATE the statement failed with, or None if the database accepted it."""
    try:
        db.execute(sql, params)
    except psycopg.Error as exc:
        return exc.sqlstate or "?"
    return None


def named(code: str | None) -> str:
    if code is None:
        return "no error: the database accepted it"
    return f"SQLSTATE {code} ({SQLSTATE_NAMES.get(code, 'another error')})"


USER_SQL = ("INSERT INTO users (first_name, last_name, email, email_normalized) "
            "VALUES (%s, %s, %s, %s) RETURNING id")
MOVIE_SQL = "INSERT INTO movies (title, duration_minutes) VALUES (%s, %s) RETURNING id"
AUDITORIUM_SQL = "INSERT INTO auditoriums (name) VALUES (%s) RETURNING id"
SEAT_SQL = ("INSERT INTO seats (auditorium_id, row_label, number) VALUES (%s, %s, %s) "
            "RETURNING id")
SHOWTIME_SQL = ("INSERT INTO showtimes (movie_id, auditorium_id, during, price_cents) "
                "VALUES (%s, %s, tstzrange(%s, %s, '[)'), %s) RETURNING id")
RESERVATION_SQL = ("INSERT INTO reservations (user_id, showtime_id, seat_id, status) "
                   "VALUES (%s, %s, %s, %s) RETURNING id")


@dataclasses.dataclass
class World:
    """Rows seeded for one check: an auditorium with seats, a movie, a showtime, users."""

    users: list[int]
    movie: int
    auditorium: int
    seats: list[int]
    showtime: int
    starts: dt.datetime
    minutes: int


def random_start(rng: random.Random) -> dt.datetime:
    day = dt.datetime(2030, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=rng.randint(0, 3_000))
    return day + dt.timedelta(hours=rng.randint(10, 22), minutes=rng.choice((0, 15, 30, 45)))


def add_user(db: psycopg.Connection[Any], rng: random.Random) -> int:
    first, last = token(rng, 6).title(), token(rng, 8).title()
    email = f"{first}.{last}.{token(rng, 6)}@Example.com"
    return insert(db, USER_SQL, (first, last, email, email.lower()))


def add_auditorium(db: psycopg.Connection[Any], rng: random.Random) -> int:
    return insert(db, AUDITORIUM_SQL, (f"Hall {token(rng)}",))


def seed_world(db: psycopg.Connection[Any], rng: random.Random, *, users: int = 1,
               seats: int = 4) -> World:
    movie_minutes = rng.randint(80, 180)
    movie = insert(db, MOVIE_SQL, (f"The {token(rng).title()}", movie_minutes))
    auditorium = add_auditorium(db, rng)
    rows = rng.sample(string.ascii_uppercase, k=seats)
    seat_ids = [insert(db, SEAT_SQL, (auditorium, row, rng.randint(1, 30))) for row in rows]
    starts = random_start(rng)
    showtime = insert(db, SHOWTIME_SQL, (
        movie, auditorium, starts, starts + dt.timedelta(minutes=movie_minutes),
        rng.randint(500, 2_500),
    ))
    return World([add_user(db, rng) for _ in range(users)], movie, auditorium, seat_ids,
                 showtime, starts, movie_minutes)


def missing_id(db: psycopg.Connection[Any], table: str, rng: random.Random) -> int:
    row = db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()
    assert row is not None
    return int(row[0]) + rng.randint(1_000, 1_000_000)


@pytest.fixture(scope="module")
def schema_gaps(stack: Any) -> list[str]:
    """Contract tables and columns missing from the app's database (empty when all there)."""
    with psycopg.connect(stack.dsn("db"), autocommit=True) as conn:
        gaps = []
        for table, wanted in SCHEMA.items():
            have = columns_of(conn, table)
            if not have:
                gaps.append(f"table {table}")
            else:
                gaps += [f"{table}.{column}" for column in wanted if column not in have]
        return gaps


def skip_without_schema(gaps: list[str]) -> None:
    if gaps:
        pytest.skip("can't check until the schema has the tables and columns of README.md "
                    f"(see db_enforces_rules); missing: {', '.join(gaps)}")


# --- 1. migrations: up, down, up ----------------------------------------------------------


#: The result of `alembic check` on the database check 1 built from nothing, for check 2.
_drift_after_roundtrip: list[Step] = []


@hint(MIGRATIONS)
def test_migrations_roundtrip(stack: Any, db: psycopg.Connection[Any]) -> None:
    """Migrations build the schema from nothing, take all of it down, and build it again"""
    with scratch_database(stack, db) as scratch, MigrationRun(stack, scratch, [
        ["upgrade", "head"], "built", ["downgrade", "base"], "emptied",
        ["upgrade", "head"], ["check"],
    ]) as run:
        if not run.reached("built"):
            raise run.failure("on an empty database")
        built = user_tables(scratch.conn)
        missing = set(SCHEMA) - built
        expect(
            not missing,
            f"After `alembic upgrade head` on an empty database, every table of the schema "
            f"should exist; missing: {listing(missing)}. Tables made by anything but a "
            f"migration (create_all() at startup, say) don't exist on a new database until "
            f"the app happens to run.",
            expected=listing(set(SCHEMA) | {"alembic_version"}), actual=listing(built),
        )
        run.resume()
        if not run.reached("emptied"):
            raise run.failure("after upgrade head")
        left = user_tables(scratch.conn)
        expect(
            left == {"alembic_version"},
            f"`alembic downgrade base` should leave only alembic_version; it left "
            f"{listing(left - {'alembic_version'})}. Every table an upgrade creates, its "
            f"downgrade must drop.",
            expected="alembic_version", actual=listing(left),
        )
        run.resume()
        steps = run.steps()  # alembic commands only: upgrade, downgrade, upgrade, check
        if len(steps) < 3 or steps[2].exit_code != 0:
            raise run.failure("again, after downgrade base: the downgrades left something "
                              "behind that the upgrades trip over")
    if len(steps) == 4:
        _drift_after_roundtrip.append(steps[3])


# --- 2. drift -----------------------------------------------------------------------------


@hint(DRIFT)
def test_no_drift(stack: Any, db: psycopg.Connection[Any]) -> None:
    """alembic check finds no drift between the models and what the migrations build"""
    # Check 1 ends with `alembic check` on a database built from nothing; when it got that
    # far, judge its result instead of spending another container on the same question.
    if _drift_after_roundtrip:
        checked = _drift_after_roundtrip[-1]
    else:
        with scratch_database(stack, db) as scratch, \
                MigrationRun(stack, scratch, [["upgrade", "head"], ["check"]]) as run:
            steps = run.steps()
        if len(steps) < 2:
            pytest.skip("can't check until `alembic upgrade head` works on an empty database "
                        "(see migrations_roundtrip)")
        checked = steps[1]
    drift = "New upgrade operations detected" in checked.output
    expect(
        checked.exit_code == 0,
        "`alembic check`, run against a database your migrations just built, found that your "
        "models describe a different schema (what it would add or drop is below)."
        if drift else
        f"`alembic check` could not compare your models with your migrations: it exited "
        f"with status {checked.exit_code}.",
        expected="No new upgrade operations detected.", actual=tail(checked.output, 20),
    )


# --- 3. the database enforces the rules ---------------------------------------------------


@hint(DB_ENFORCES)
def test_db_enforces_rules(
    db: psycopg.Connection[Any], rng: random.Random, schema_gaps: list[str]
) -> None:
    """Raw SQL that breaks a rule fails with the right SQLSTATE (23505, 23503, 23514, 23502)"""
    expect(
        not schema_gaps,
        f"The schema should have the tables and columns of README.md; missing: "
        f"{', '.join(schema_gaps)}.",
        expected="users, movies, auditoriums, seats, showtimes, reservations",
        actual=", ".join(schema_gaps), hint=CONTRACT,
    )
    world = seed_world(db, rng, users=3, seats=4)
    (user, other, third), seats = world.users, world.seats
    problems: list[str] = []
    hints: list[str] = []

    def refused(case: str, sql: str, params: Sequence[Any], want: str) -> None:
        got = sqlstate_of(db, sql, params)
        if got != want:
            problems.append(f"{case} should fail with {named(want)}; got {named(got)}")

    # 23505: the same seat, twice active, for one showtime. Then: cancelled seats free up.
    insert(db, RESERVATION_SQL, (user, world.showtime, seats[0], "active"))
    duplicate = sqlstate_of(db, RESERVATION_SQL, (other, world.showtime, seats[0], "active"))
    if duplicate != "23505":
        problems.append(f"a second active reservation of seat {seats[0]} for showtime "
                        f"{world.showtime} should fail with {named('23505')}; got "
                        f"{named(duplicate)}")
        hints.append(PARTIAL_UNIQUE)
    booked = insert(db, RESERVATION_SQL, (user, world.showtime, seats[1], "active"))
    db.execute("UPDATE reservations SET status = 'cancelled' WHERE id = %s", (booked,))
    rebooked = sqlstate_of(db, RESERVATION_SQL, (third, world.showtime, seats[1], "active"))
    if rebooked is not None:
        problems.append(f"after its reservation was cancelled, seat {seats[1]} should be "
                        f"bookable again for showtime {world.showtime}, but the insert failed "
                        f"with {named(rebooked)}")
        hints.append(PARTIAL_UNIQUE)

    # 23503: references to rows that don't exist.
    refused("a reservation for a showtime that doesn't exist", RESERVATION_SQL,
            (user, missing_id(db, "showtimes", rng), seats[2], "active"), "23503")
    refused("a reservation of a seat that doesn't exist", RESERVATION_SQL,
            (user, world.showtime, missing_id(db, "seats", rng), "active"), "23503")

    # 23514: a negative price, in an auditorium of its own (no overlap can interfere).
    later = random_start(rng)
    refused(f"a showtime with price_cents = {-rng.randint(1, 5_000)}", SHOWTIME_SQL,
            (world.movie, add_auditorium(db, rng), later, later + dt.timedelta(hours=2),
             -rng.randint(1, 5_000)), "23514")

    # 23502: NULL in each required column, every other value valid.
    free_seat = seats[3]
    start = random_start(rng)
    nulls: list[tuple[str, str, tuple[Any, ...]]] = [
        ("movies.title", MOVIE_SQL, (None, 100)),
        ("seats.row_label", SEAT_SQL, (world.auditorium, None, 99)),
        ("showtimes.price_cents", SHOWTIME_SQL,
         (world.movie, add_auditorium(db, rng), start, start + dt.timedelta(hours=2), None)),
        ("reservations.user_id", RESERVATION_SQL, (None, world.showtime, free_seat, "active")),
        ("reservations.showtime_id", RESERVATION_SQL, (user, None, free_seat, "active")),
        ("reservations.seat_id", RESERVATION_SQL, (user, world.showtime, None, "active")),
    ]
    rng.shuffle(nulls)
    for column, sql, params in nulls:
        refused(f"NULL in {column}", sql, params, "23502")

    expect(
        not problems,
        f"The database itself must refuse rows that break the rules; {len(problems)} "
        f"rule(s) are not enforced: " + "; ".join(problems) + ".",
        expected="23505 / 23503 / 23514 / 23502 for each case",
        actual=f"{len(problems)} case(s) wrong", hint=" ".join([*dict.fromkeys(hints),
                                                                 DB_ENFORCES]),
    )


# --- 4. no overlapping showtimes ----------------------------------------------------------


@hint(EXCLUSION)
def test_no_overlapping_showtimes(
    db: psycopg.Connection[Any], rng: random.Random, schema_gaps: list[str]
) -> None:
    """Two overlapping showtimes in one auditorium fail with 23P01 (an exclusion constraint)"""
    skip_without_schema(schema_gaps)
    movie = insert(db, MOVIE_SQL, (f"The {token(rng).title()}", 120))
    hall, other_hall = add_auditorium(db, rng), add_auditorium(db, rng)
    start = random_start(rng)
    length = dt.timedelta(minutes=rng.randint(90, 180))
    price = rng.randint(500, 2_000)

    def show(auditorium: int, begins: dt.datetime, ends: dt.datetime) -> str | None:
        return sqlstate_of(db, SHOWTIME_SQL, (movie, auditorium, begins, ends, price))

    def when(begins: dt.datetime, ends: dt.datetime) -> str:
        return f"[{begins:%Y-%m-%d %H:%M}, {ends:%H:%M})"

    insert(db, SHOWTIME_SQL, (movie, hall, start, start + length, price))
    shift = dt.timedelta(minutes=rng.randint(10, 80))
    overlapping = [
        ("starting during it", start + shift, start + shift + length),
        ("around it", start - shift, start + length + shift),
    ]
    for how, begins, ends in overlapping:
        got = show(hall, begins, ends)
        expect(
            got == "23P01",
            f"Auditorium {hall} has a showtime {when(start, start + length)}. Inserting a "
            f"second one {how}, {when(begins, ends)}, in the same auditorium should fail with "
            f"{named('23P01')}; got {named(got)}.",
            expected="SQLSTATE 23P01", actual=named(got),
        )
    after = start + length
    got = show(hall, after, after + length)
    expect(
        got is None,
        f"A showtime {when(after, after + length)} starts exactly when {when(start, after)} "
        f"ends, so they don't overlap ('[)' ranges), and the insert should succeed; it failed "
        f"with {named(got)}.",
        expected="accepted", actual=named(got),
        hint="Compare ranges with && on half-open tstzrange values: tstzrange(start, end, '[)').",
    )
    got = show(other_hall, start, start + length)
    expect(
        got is None,
        f"The same time in another auditorium ({other_hall}) doesn't clash, and the insert "
        f"should succeed; it failed with {named(got)}.",
        expected="accepted", actual=named(got),
        hint="The exclusion constraint compares auditorium_id WITH = and during WITH &&: "
        "only the same auditorium at overlapping times clashes.",
    )


# --- 5. money ------------------------------------------------------------------------------


@hint(MONEY)
def test_money_columns(db: psycopg.Connection[Any], schema_gaps: list[str]) -> None:
    """Money columns are integer, bigint or numeric, never real or double precision"""
    skip_without_schema(schema_gaps)
    rows = db.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    ).fetchall()
    money = {f"{table}.{column}": kind for table, column, kind in rows
             if MONEY_NAME.search(str(column))}
    inexact = {column: kind for column, kind in money.items() if kind not in EXACT_TYPES}
    expect(
        not inexact,
        "Money must be stored exactly: " + "; ".join(
            f"{column} is {kind}" for column, kind in sorted(inexact.items())
        ) + f", not one of {', '.join(EXACT_TYPES)}.",
        expected=" or ".join(EXACT_TYPES),
        actual=", ".join(f"{column} {kind}" for column, kind in sorted(money.items())),
    )


# --- 6. the data migration ----------------------------------------------------------------

FIRST_NAMES = ("Anna", "José", "Zoë", "Mary Ann", "Jean-Luc", "Björn", "Aiko", "Chidi",
               "Siobhán", "Li", "Olu", "María José", "Dmitri", "Noor", "Émile", "Kai")
LAST_NAMES = ("Smith", "van der Berg", "de la Cruz", "O'Neil", "Müller", "Nakamura",
              "Smith-Jones", "Okafor", "García Márquez", "Ødegaard", "Ng", "ten Boom")


def fixture_users(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """(name, email) rows: every name holds at least one space; emails differ beyond case."""
    rows = []
    for index in range(count):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        local = re.sub(r"[^a-z]", "", name.lower().replace(" ", "."))[:12] or "user"
        email = f"{local}.{index}.{token(rng, 4)}@example.com"
        rows.append((name, "".join(c.upper() if rng.random() < 0.3 else c for c in email)))
    return rows


def unique_single_column(conn: psycopg.Connection[Any], table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indnatts = 1 "
        "AND i.indpred IS NULL AND a.attname = %s",
        (f"public.{table}", column),
    ).fetchone()
    return row is not None and int(row[0]) > 0


def first_few(items: Sequence[str], limit: int = 3) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


@hint(EXPAND_BACKFILL_CONTRACT)
def test_data_migration(stack: Any, db: psycopg.Connection[Any], rng: random.Random) -> None:
    """The last migration splits users.name into first_name/last_name and keeps every user"""
    # Replayed as it will run a year from now: with app.models emptied (the models will have
    # moved on by then), so a migration that imports them fails here.
    with scratch_database(stack, db) as scratch, MigrationRun(stack, scratch, [
        ["upgrade", "head-1"], "at-previous", ["upgrade", "head"], "at-head",
        ["downgrade", "-1"],
    ], forget_models=True) as run:
        if not run.reached("at-previous"):
            failure = run.failure("on an empty database, with app.models emptied as it will "
                                  "be once the models have moved on")
            if any(sign in (failure.actual or "") for sign in MODEL_IMPORT_SIGNS):
                failure.hint = NO_MODEL_IMPORTS
            else:
                failure.hint = ("head-1 is the revision before your last one; the last "
                                "migration must be the users split, after 0002. "
                                + NO_MODEL_IMPORTS)
            raise failure
        before = columns_of(scratch.conn, "users")
        expect(
            {"name", "email"} <= set(before),
            "At head-1, before your last migration, users should still have the name and "
            f"email columns of 0001; it has {listing(set(before))}. The split belongs in the "
            "last migration, and 0001 must stay as it is.",
            expected="name, email", actual=listing(set(before)),
        )
        rows = fixture_users(rng, DATA_MIGRATION_USERS)
        try:
            with scratch.conn.cursor() as cursor, \
                    cursor.copy("COPY users (name, email) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise Failure(
                f"At head-1 the grader could not load users (name, email): "
                f"{str(exc).strip()}", hint=CONTRACT,
            ) from None
        original = dict(scratch.conn.execute("SELECT id, name FROM users").fetchall())
        emails = dict(scratch.conn.execute("SELECT id, email FROM users").fetchall())

        run.resume()
        if not run.reached("at-head"):
            raise run.failure(f"from head-1, over {len(rows)} users")
        after = columns_of(scratch.conn, "users")
        wanted = {"first_name", "last_name", "email", "email_normalized"}
        expect(
            wanted <= set(after) and "name" not in after,
            f"After the last migration, users should have {listing(wanted)} and no name "
            f"column; it has {listing(set(after))}.",
            expected=listing(wanted), actual=listing(set(after)),
        )
        nullable = sorted(column for column in ("first_name", "last_name", "email_normalized")
                          if after[column][1])
        expect(not nullable,
               f"Every user has these now, so they should be NOT NULL: {listing(nullable)}.",
               expected="NOT NULL", actual=f"nullable: {listing(nullable)}")
        expect(
            unique_single_column(scratch.conn, "users", "email_normalized"),
            "users.email_normalized should be UNIQUE (a unique constraint or a unique index "
            "on that column alone, without WHERE): one account per address, whatever its "
            "case.", expected="UNIQUE (email_normalized)", actual="no such unique index",
        )
        migrated = {
            int(user_id): (first, last, normalized)
            for user_id, first, last, normalized in scratch.conn.execute(
                "SELECT id, first_name, last_name, email_normalized FROM users"
            ).fetchall()
        }
        expect(
            len(migrated) == len(original),
            f"The migration must keep every user: {len(original)} before, {len(migrated)} "
            f"after.", expected=len(original), actual=len(migrated),
        )
        wrong = [
            f"user {user_id} was {name!r}, now first_name={migrated[user_id][0]!r} "
            f"last_name={migrated[user_id][1]!r}"
            for user_id, name in original.items()
            if user_id not in migrated
            or f"{migrated[user_id][0]} {migrated[user_id][1]}" != name
        ]
        expect(
            not wrong,
            f"For every user, first_name || ' ' || last_name should equal the old name; "
            f"{len(wrong)} of {len(original)} don't: {first_few(wrong)}.",
            expected="first_name || ' ' || last_name = name",
            actual=f"{len(wrong)} mismatches",
        )
        unnormalized = [
            f"user {user_id} has email {emails[user_id]!r} but email_normalized="
            f"{migrated[user_id][2]!r}"
            for user_id in original
            if migrated[user_id][2] != emails[user_id].strip().lower()
        ]
        expect(
            not unnormalized,
            f"email_normalized should be lower(email) for existing users too; "
            f"{len(unnormalized)} aren't: {first_few(unnormalized)}.",
        )

        run.resume()
        steps = run.steps()
        if len(steps) < 3 or steps[2].exit_code != 0:
            raise run.failure("while undoing the last migration over the migrated users")
        restored = dict(scratch.conn.execute("SELECT id, name FROM users").fetchall()) \
            if "name" in columns_of(scratch.conn, "users") else {}
        lost = [f"user {user_id} was {name!r}, is now {restored.get(user_id)!r}"
                for user_id, name in original.items() if restored.get(user_id) != name]
        expect(
            not lost,
            f"`alembic downgrade -1` should give users their name back, rebuilt from "
            f"first_name and last_name; {len(lost)} of {len(original)} differ: "
            f"{first_few(lost)}.",
            expected="every name as before", actual=f"{len(lost)} differ",
        )


# --- 7. a taken seat is a 409 -------------------------------------------------------------


def book(http: httpx.Client, user: int, showtime: int, seat: int) -> httpx.Response:
    body = {"user_id": user, "showtime_id": showtime, "seat_id": seat}
    try:
        return http.post("/reservations", json=body)
    except httpx.TransportError as exc:
        raise Failure(f"POST /reservations got no answer: {type(exc).__name__} {exc}".rstrip(),
                      hint=CONFLICT) from None


def tally(outcomes: Sequence[Outcome]) -> str:
    counts = collections.Counter(
        str(outcome.status) if outcome.error is None else "no answer" for outcome in outcomes
    )
    return ", ".join(f"{count} × {label}" for label, count in sorted(counts.items()))


def waiting_inserts(db: psycopg.Connection[Any]) -> int:
    row = db.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted "
        "AND relation = 'public.reservations'::regclass"
    ).fetchone()
    return int(row[0]) if row else 0


def race(stack: Any, db: psycopg.Connection[Any], app_url: str,
         requests: Sequence[tuple[str, str, Any]]) -> list[Outcome]:
    """Send ``requests`` at once, holding every INSERT into reservations until all have arrived.

    The grader locks reservations in SHARE mode: reads go on, writes wait. Each request gets
    as far as its INSERT (after whatever checks it makes first) and queues; once all of them
    queue (or RACE_GATHER seconds pass), the lock goes and they all write at once. So a
    check-then-insert race happens on every run, however fast or slow the machine, while an
    app that lets the unique index decide answers one 201 and the rest 409.
    """
    results: list[list[Outcome]] = []
    with psycopg.connect(stack.dsn("db")) as gate:
        gate.execute("LOCK TABLE reservations IN SHARE MODE")
        sender = threading.Thread(target=lambda: results.append(
            burst(app_url, requests, concurrency=len(requests), timeout=BURST_TIMEOUT)
        ), name="racers", daemon=True)
        sender.start()
        give_up = time.monotonic() + RACE_GATHER
        while (time.monotonic() < give_up and sender.is_alive()
               and waiting_inserts(db) < len(requests)):
            time.sleep(0.05)
        gate.rollback()
    sender.join(timeout=BURST_TIMEOUT + 10)
    return results[0] if results else []


@hint(CONFLICT)
def test_taken_seat_conflict(
    stack: Any, db: psycopg.Connection[Any], http: httpx.Client, app_url: str,
    rng: random.Random, schema_gaps: list[str],
) -> None:
    """POST /reservations for a taken seat answers 409 problem+json, even when requests race"""
    skip_without_schema(schema_gaps)
    world = seed_world(db, rng, users=RACERS + 2, seats=3)
    first, second, *racers = world.users
    seat, rebook_seat, raced_seat = world.seats

    response = book(http, first, world.showtime, seat)
    expect(
        response.status_code == 201,
        f"Booking free seat {seat} for showtime {world.showtime} should answer 201, not "
        f"{response.status_code}.", expected=201, actual=describe(response),
    )
    taken = book(http, second, world.showtime, seat)
    expect(
        taken.status_code == 409,
        f"Seat {seat} is already reserved for showtime {world.showtime}, so booking it again "
        f"should answer 409 Conflict, not {taken.status_code}."
        + (" A 500 means the IntegrityError escaped your handler." if taken.status_code >= 500
           else ""),
        expected=409, actual=describe(taken),
    )
    expect_problem(taken, 409)

    unknown_user = missing_id(db, "users", rng)
    orphan = book(http, unknown_user, world.showtime, rebook_seat)
    expect(
        orphan.status_code == 422,
        f"A reservation for user {unknown_user}, who doesn't exist, should answer 422 (the "
        f"foreign key refuses it: SQLSTATE 23503), not {orphan.status_code}.",
        expected=422, actual=describe(orphan),
    )

    reservation = json_body(response)
    reservation_id = reservation.get("id") if isinstance(reservation, dict) else None
    cancelled = http.post(f"/reservations/{reservation_id}/cancel")
    expect(
        cancelled.status_code == 200,
        f"POST /reservations/{reservation_id}/cancel should answer 200, not "
        f"{cancelled.status_code}.", expected=200, actual=describe(cancelled),
    )
    again = book(http, second, world.showtime, seat)
    expect(
        again.status_code == 201,
        f"Seat {seat}'s reservation was cancelled, so booking it again should answer 201, "
        f"not {again.status_code}.", expected=201, actual=describe(again), hint=PARTIAL_UNIQUE,
    )

    requests = [("POST", "/reservations",
                 {"user_id": user, "showtime_id": world.showtime, "seat_id": raced_seat})
                for user in racers]
    outcomes = race(stack, db, app_url, requests)
    created = sum(outcome.status == 201 for outcome in outcomes)
    conflicts = sum(outcome.status == 409 for outcome in outcomes)
    row = db.execute(
        "SELECT count(*) FROM reservations WHERE showtime_id = %s AND seat_id = %s "
        "AND status = 'active'", (world.showtime, raced_seat),
    ).fetchone()
    active = int(row[0]) if row else 0
    expect(
        created == 1 and conflicts == len(requests) - 1 and active == 1,
        f"{len(requests)} users booked seat {raced_seat} at the same moment: exactly one "
        f"should get 201 and the other {len(requests) - 1} 409, leaving one active "
        f"reservation. The answers were {tally(outcomes)}, and the seat has {active} active "
        f"reservation(s).",
        expected=f"1 × 201, {len(requests) - 1} × 409, 1 active reservation",
        actual=f"{tally(outcomes)}, {active} active",
    )
