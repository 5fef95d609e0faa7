"""Checks for the wallet-transfers exercise: money invariants under concurrency and failure.

Every check seeds its own accounts straight into Postgres (the schema is fixed), drives the app
over HTTP, then audits balances and the ledger with SQL.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpx
import psycopg

from bb.grader import (
    Failure,
    HintText,
    Outcome,
    burst,
    describe,
    expect,
    expect_problem,
    hint,
    json_body,
)

# Each hint is its levels, shortest first: a check that fails again on a later grade shows
# the next one (bb hint --next CHECK reveals it on request).
LOST_UPDATE = (
    "Reading a balance, checking it in Python and writing it back is the lost-update pattern. "
    "Do it atomically in SQL (UPDATE accounts SET balance_cents = balance_cents - :a "
    "WHERE id = :id AND balance_cents >= :a), or lock the row with SELECT ... FOR UPDATE.",
    "Two requests both read 100, both decide 100 - 80 is fine, and both write 20: one debit "
    "vanished, or the account went below zero. Postgres must see the read and the write as "
    "one step: either one statement (`update(Account).where(Account.id == id).values("
    "balance_cents=Account.balance_cents - amount)` with the balance check in the WHERE, "
    "and `.returning(...)` to learn whether a row matched), or `select(...).with_for_update()`"
    " inside the transaction, so the second request waits for the first to commit and then "
    "reads the new balance.",
)
ONE_TRANSACTION = (
    "Debit, credit and ledger rows belong in one transaction, so either all of them happen "
    "or none do.",
    "Each `session.commit()` ends a transaction: a failure after the first commit leaves "
    "the debit without its credit. Wrap the whole transfer in one `with session.begin():` "
    "block (locks, balance check, both updates, both ledger rows) and commit nowhere inside "
    "it; an exception anywhere in the block then rolls every part back.",
)
LOCK_ORDER = (
    "Lock rows in a consistent order (by id), so that deadlocks can't form. Retrying on SQLSTATE "
    "40P01/40001 only recovers from a deadlock, after Postgres has spent a second finding it.",
    "A transfer A→B that locks A then B, and one B→A that locks B then A, can each hold one "
    "row and wait for the other forever. Lock both rows in one statement, ordered: "
    "`select(Account).where(Account.id.in_(ids)).order_by(Account.id).with_for_update()`. "
    "Every transfer then takes the lower id first, and the second simply waits.",
)
RETRY_TRANSIENT_ONLY = (
    "Retry only transient errors (deadlock or serialization failure), with a bound. A "
    "constraint violation will fail again.",
    "Catch the error, look at its SQLSTATE (`exc.orig.sqlstate` on a SQLAlchemy DBAPIError): "
    "retry only 40P01 (deadlock detected) and 40001 (serialization failure), a few times, "
    "after a rollback. Anything else (a CHECK or foreign-key violation, a missing account) "
    "fails the same way every time: answer it at once.",
)
VALIDATE_FIRST = (
    "Validate the body before touching the database (amount_cents > 0 and two different "
    "accounts, else 422), and answer 404 when an account does not exist.",
    "Put the rules on the pydantic model (`amount_cents: int = Field(gt=0)` and a "
    "model_validator that rejects from_account_id == to_account_id), so FastAPI answers 422 "
    "before your route runs; then, when the locked rows do not include an id, raise "
    "HTTPException(404) instead of indexing into what is not there.",
)

#: The writes one transfer makes: two balance UPDATEs and two ledger rows. The atomicity check
#: fails each in turn, and gives up on an app that makes more than this many.
MAX_WRITES = 8  # reference: 4 writes, so the atomicity check grades it in 5 transfers
#: The error the retry check injects: check_violation, which fails the same way every time.
PERMANENT_SQLSTATE = "23514"
#: Extra seconds every UPDATE of accounts takes during the race checks, as on a busy database.
SLOW_UPDATE = 0.02
#: How often the poller of the overdraft check reads the balance.
POLL_INTERVAL = 0.02
#: Deadline for the 200 opposing transfers of the deadlock check.
#: Measured on 2 cores: the reference takes 5.0 s on a quiet machine (4x headroom), 13.9 to 19.9 s
#: under load averages of 15 to 16 from other grades; locks taken in request order got 9 × 201
#: and 31 deadlocks (500) among the first 60 transfers.
DEADLOCK_DEADLINE = 20.0
#: No other burst may take longer than this (the reference needs a few seconds at most).
#: Measured: the reference's 500 transfers take 10.9 s on a quiet machine (5.5x headroom), 40.6 to
#: 51.6 s under load averages of 15 to 16; its overdraft burst 1.5 s and its deposits 2.9 s.
BURST_DEADLINE = 60.0

Request = tuple[str, str, Any]


# --- seeding and auditing, straight in Postgres -------------------------------------------


def seed_accounts(db: psycopg.Connection[Any], balances: Sequence[int]) -> list[int]:
    """Insert one account per balance and return their ids, in the same order."""
    ids = []
    for balance in balances:
        try:
            row = db.execute(
                "INSERT INTO accounts (balance_cents) VALUES (%s) RETURNING id", (balance,)
            ).fetchone()
        except psycopg.Error as exc:
            raise Failure(
                f"The grader could not create an account with `INSERT INTO accounts "
                f"(balance_cents) VALUES ({balance})`: {exc}".rstrip(),
                hint="The schema is fixed: keep accounts(id, balance_cents) as the starter's "
                "migration makes it, and give any column you add a default.",
            ) from None
        assert row is not None
        ids.append(int(row[0]))
    return ids


def balances_of(db: psycopg.Connection[Any], ids: Iterable[int]) -> dict[int, int]:
    rows = db.execute(
        "SELECT id, balance_cents FROM accounts WHERE id = ANY(%s)", (list(ids),)
    ).fetchall()
    return {int(account_id): int(balance) for account_id, balance in rows}


def ledger_sums(db: psycopg.Connection[Any], ids: Iterable[int]) -> dict[int, int]:
    """Σ amount_cents of the ledger, per account (accounts without entries are absent)."""
    rows = db.execute(
        "SELECT account_id, sum(amount_cents) FROM ledger_entries "
        "WHERE account_id = ANY(%s) GROUP BY account_id",
        (list(ids),),
    ).fetchall()
    return {int(account_id): int(total) for account_id, total in rows}


def ledger_rows(db: psycopg.Connection[Any], ids: Iterable[int]) -> list[tuple[str, int, int]]:
    """Every ledger entry touching ``ids``, as (transfer_id, account_id, amount_cents)."""
    rows = db.execute(
        "SELECT transfer_id::text, account_id, amount_cents FROM ledger_entries "
        "WHERE account_id = ANY(%s)",
        (list(ids),),
    ).fetchall()
    return [(str(transfer_id), int(account), int(amount)) for transfer_id, account, amount in rows]


def ledger_size(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM ledger_entries").fetchone()
    assert row is not None
    return int(row[0])


def unknown_account_id(db: psycopg.Connection[Any], rng: random.Random) -> int:
    row = db.execute("SELECT coalesce(max(id), 0) FROM accounts").fetchone()
    assert row is not None
    return int(row[0]) + rng.randint(1_000, 1_000_000)


@contextlib.contextmanager
def injected_trigger(
    db: psycopg.Connection[Any], name: str, *, before: str, table: str, body: str
) -> Iterator[None]:
    """Run the PL/pgSQL ``body`` before every ``before`` (INSERT, UPDATE) of a row of ``table``.

    The trigger is removed on the way out, whatever happened.
    """
    db.execute(
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN {body} END $$"
    )
    try:
        db.execute(f"CREATE TRIGGER {name} BEFORE {before} ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {name}()")
        yield
    finally:
        db.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        db.execute(f"DROP FUNCTION IF EXISTS {name}()")


#: What each digit of the write log stands for (see :func:`failing_writes`).
WRITE_NAMES = {
    "1": "the UPDATE of the sender's balance",
    "2": "the UPDATE of the receiver's balance",
    "3": "the sender's ledger row",
    "4": "the receiver's ledger row",
}


@dataclasses.dataclass(frozen=True)
class WriteLog:
    """The writes a transfer attempted, in order, as digits of :data:`WRITE_NAMES`."""

    db: psycopg.Connection[Any]
    sequence: str

    def digits(self) -> str:
        row = self.db.execute(f"SELECT last_value FROM {self.sequence}").fetchone()
        assert row is not None
        return "" if int(row[0]) == 0 else str(row[0])

    def account(self, fail_from: int, *, only_once: bool = False) -> str:
        """The writes in order, those refused (as :func:`failing_writes` chose) marked."""
        names = [WRITE_NAMES[digit]
                 + (" (refused)" if at == fail_from or (at > fail_from and not only_once) else "")
                 for at, digit in enumerate(self.digits(), start=1)]
        return ", then ".join(names) if names else "no write at all"


@contextlib.contextmanager
def failing_writes(
    db: psycopg.Connection[Any], sender: int, receiver: int, *, fail_from: int,
    only_once: bool = False, sqlstate: str = "P0001",
) -> Iterator[WriteLog]:
    """Log every write touching ``sender`` or ``receiver``, and fail the ``fail_from``-th.

    A write is an UPDATE of either account's row or an INSERT of a ledger row on either; each
    fires a trigger that appends its digit (WRITE_NAMES) to a log kept in a sequence, which,
    unlike a table, keeps what it was given when the transaction around it rolls back. The
    ``fail_from``-th write and every later one raise ``sqlstate`` (only that one write with
    ``only_once``), so whatever order an app writes in, each of its writes gets to fail.
    """
    sequence = "bb_grader_write_log"
    db.execute(f"DROP SEQUENCE IF EXISTS {sequence}")
    db.execute(f"CREATE SEQUENCE {sequence} MINVALUE 0 START WITH 0")
    compare = "=" if only_once else ">="

    def body(row_of: str, sender_digit: int, receiver_digit: int) -> str:
        return (
            f"IF {row_of} IN ({int(sender)}, {int(receiver)}) THEN "
            f"IF (SELECT last_value FROM {sequence}) < 10^17 THEN "
            f"PERFORM setval('{sequence}', (SELECT last_value FROM {sequence}) * 10 + "
            f"CASE WHEN {row_of} = {int(sender)} THEN {sender_digit} "
            f"ELSE {receiver_digit} END); END IF; "
            f"IF length((SELECT last_value FROM {sequence})::text) {compare} {int(fail_from)} "
            f"THEN RAISE EXCEPTION USING ERRCODE = '{sqlstate}', "
            "MESSAGE = 'bb grader: injected failure of a transfer''s write'; END IF; "
            "END IF; RETURN NEW;"
        )

    try:
        with injected_trigger(db, "bb_grader_fail_balance", before="UPDATE", table="accounts",
                              body=body("NEW.id", 1, 2)), \
             injected_trigger(db, "bb_grader_fail_ledger", before="INSERT",
                              table="ledger_entries", body=body("NEW.account_id", 3, 4)):
            yield WriteLog(db, sequence)
    finally:
        db.execute(f"DROP SEQUENCE IF EXISTS {sequence}")


def slow_balance_updates(db: psycopg.Connection[Any]) -> contextlib.AbstractContextManager[None]:
    """Make every UPDATE of accounts SLOW_UPDATE seconds slower.

    A race needs two requests inside the same read-then-write window; on a fast, idle machine
    they sometimes miss each other. A slow write (as on any busy database) keeps the window open,
    so a read-modify-write race shows up on every run, while correct code is merely slower.
    """
    return injected_trigger(db, "bb_grader_slow_update", before="UPDATE", table="accounts",
                            body=f"PERFORM pg_sleep({SLOW_UPDATE}); RETURN NEW;")


def short_list(items: Sequence[object], limit: int = 8) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return f"[{shown}{', …' if len(items) > limit else ''}]"


def first_few(items: Sequence[str], limit: int = 3) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def expect_books_balance(
    db: psycopg.Connection[Any], initial: dict[int, int], *, hint: HintText | None = None
) -> None:
    """Σ balances is unchanged, and every balance is its opening balance plus its ledger entries."""
    final = balances_of(db, initial)
    before, after = sum(initial.values()), sum(final.values())
    expect(
        after == before,
        f"Transfers must move money, never make or destroy it: these {len(initial)} accounts "
        f"held {before} cents in total before the transfers and {after} after "
        f"({after - before:+d}).",
        expected=before, actual=after, hint=hint,
    )
    sums = ledger_sums(db, initial)
    wrong = [
        f"account {account_id} opened with {opening}, its ledger entries add "
        f"{sums.get(account_id, 0):+d}, so it should hold {opening + sums.get(account_id, 0)}, "
        f"but it holds {final[account_id]}"
        for account_id, opening in initial.items()
        if final[account_id] != opening + sums.get(account_id, 0)
    ]
    expect(
        not wrong,
        f"Every balance should equal its opening balance plus the sum of its ledger entries; "
        f"{len(wrong)} of {len(initial)} accounts disagree with the ledger: {first_few(wrong)}.",
        hint=hint,
    )


def created_transfer_id(response: httpx.Response, body: dict[str, int]) -> str:
    """The transfer_id of a 201, after checking the answer echoes the request."""
    answer = json_body(response)
    fields = answer if isinstance(answer, dict) else {}
    try:
        transfer_id = str(uuid.UUID(str(fields.get("transfer_id"))))
    except ValueError:
        transfer_id = None
    expect(
        transfer_id is not None and {key: fields.get(key) for key in body} == body,
        f"A 201 from POST /transfers should carry a UUID transfer_id and echo "
        f"from_account_id, to_account_id and amount_cents of {body}.",
        expected="{transfer_id, from_account_id, to_account_id, amount_cents}",
        actual=describe(response),
    )
    assert transfer_id is not None
    return transfer_id


def expect_ledger_matches(
    db: psycopg.Connection[Any],
    ids: Sequence[int],
    requests: Sequence[Request],
    outcomes: Sequence[Outcome],
) -> None:
    """Each 201's transfer_id has exactly its two legs in the ledger, and nothing else is there."""
    legs: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for transfer_id, account_id, amount in ledger_rows(db, ids):
        legs[transfer_id].append((account_id, amount))
    unbalanced = [
        f"transfer {transfer_id} has {len(entries)} entries summing to "
        f"{sum(amount for _, amount in entries)}"
        for transfer_id, entries in legs.items()
        if len(entries) != 2 or sum(amount for _, amount in entries) != 0
    ]
    expect(
        not unbalanced,
        f"Every transfer_id should have exactly 2 ledger entries that sum to 0; "
        f"{len(unbalanced)} do not: {first_few(unbalanced)}.",
        hint=ONE_TRANSACTION,
    )

    reported: set[str] = set()
    for (_, _, body), outcome in zip(requests, outcomes, strict=True):
        if outcome.status != 201 or outcome.response is None:
            continue
        transfer_id = created_transfer_id(outcome.response, body)
        expected_legs = sorted([(body["from_account_id"], -body["amount_cents"]),
                                (body["to_account_id"], body["amount_cents"])])
        expect(
            sorted(legs.get(transfer_id, [])) == expected_legs,
            f"Transfer {transfer_id} ({body['amount_cents']} cents from account "
            f"{body['from_account_id']} to {body['to_account_id']}) answered 201, so the ledger "
            f"should hold -{body['amount_cents']} on the sender and +{body['amount_cents']} on "
            f"the receiver under that transfer_id.",
            expected=expected_legs, actual=sorted(legs.get(transfer_id, [])),
            hint=ONE_TRANSACTION,
        )
        reported.add(transfer_id)
    extra = set(legs) - reported
    expect(
        not extra,
        f"The ledger holds {len(extra)} transfer(s) that no 201 reported (a refused transfer "
        f"must leave no ledger rows), for example {sorted(extra)[0] if extra else ''}.",
        hint=ONE_TRANSACTION,
    )


# --- driving the app ----------------------------------------------------------------------


def transfer(from_id: int, to_id: int, amount: int) -> Request:
    body = {"from_account_id": from_id, "to_account_id": to_id, "amount_cents": amount}
    return ("POST", "/transfers", body)


def deposit(account_id: int, amount: int) -> Request:
    return ("POST", f"/accounts/{account_id}/deposit", {"amount_cents": amount})


def send(http: httpx.Client, request: Request) -> httpx.Response:
    """One request; a connection error or timeout fails the check with a readable message."""
    method, path, body = request
    try:
        # A new connection each time: the grader's SQL between two requests can outlast the
        # app's keep-alive, and a request sent as the app closes an idle connection is lost.
        return http.request(method, path, json=body, headers={"Connection": "close"})
    except httpx.TransportError as exc:
        raise Failure(f"{method} {path} got no answer: {type(exc).__name__} {exc}".rstrip()) \
            from None


def tally(outcomes: Sequence[Outcome]) -> str:
    """``"23 × 201, 27 × 409"``: how the answers were distributed."""
    counts = collections.Counter(
        str(outcome.status) if outcome.error is None
        else f"no answer ({(outcome.error or '').split(':')[0]})"
        for outcome in outcomes
    )
    return ", ".join(f"{count} × {label}" for label, count in sorted(counts.items()))


def sample_of(outcomes: Sequence[Outcome], allowed: set[int]) -> str:
    """One answer whose status is not in ``allowed`` (or that never came), for messages."""
    for outcome in outcomes:
        if outcome.response is None:
            return f" For example: {outcome.error}"
        if outcome.response.status_code not in allowed:
            return f" For example: {describe(outcome.response)}"
    return ""


def expect_only(outcomes: Sequence[Outcome], allowed: set[int], *, what: str) -> None:
    """Every request got an answer, and each answer's status is in ``allowed``."""
    wanted = " or ".join(str(status) for status in sorted(allowed))
    expect(
        all(outcome.status in allowed for outcome in outcomes),
        f"Expected every one of the {len(outcomes)} {what} to answer {wanted}; the answers "
        f"were {tally(outcomes)}.{sample_of(outcomes, allowed)}",
    )


def send_waves(
    app_url: str,
    db: psycopg.Connection[Any],
    requests: Sequence[Request],
    *,
    concurrency: int,
    deadline: float = BURST_DEADLINE,
) -> tuple[list[Outcome], float]:
    """Send ``requests`` in waves of ``concurrency`` at once; return the outcomes and the time.

    No wave starts after ``deadline`` seconds and no request waits past it, so a jammed app
    costs one check its time, not the whole grade. Then wait for the app's queries to drain,
    so leftovers of this check don't spill into the next.
    """
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    for first in range(0, len(requests), concurrency):
        left = deadline - (time.perf_counter() - started)
        if left <= 0:
            break
        wave = requests[first:first + concurrency]
        outcomes += burst(app_url, wave, concurrency=concurrency, timeout=left)
    took = time.perf_counter() - started
    wait_for_quiet(db)
    return outcomes, took


def wait_for_quiet(db: psycopg.Connection[Any], timeout: float = 30.0) -> None:
    """Wait until no client of the database runs a query (a few checks in a row), or give up."""
    give_up = time.monotonic() + timeout
    quiet_checks = 0
    while quiet_checks < 3 and time.monotonic() < give_up:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
        ).fetchone()
        quiet_checks = quiet_checks + 1 if row is not None and row[0] == 0 else 0
        time.sleep(0.05)


def expect_all_sent(
    outcomes: Sequence[Outcome],
    requests: Sequence[Request],
    took: float,
    deadline: float,
    *,
    what: str,
    why: str = "",
) -> None:
    """Every request of :func:`send_waves` was sent and answered before the deadline."""
    expect(
        len(outcomes) == len(requests) and took <= deadline,
        f"All {len(requests)} {what} should be answered within {deadline:g} s; after "
        f"{took:.1f} s, {len(outcomes)} had been sent, and the answers were {tally(outcomes)}."
        f"{' ' + why if why else ''}",
        expected=f"{len(requests)} answers within {deadline:g} s",
        actual=f"{len(outcomes)} sent in {took:.1f} s",
    )


@dataclasses.dataclass
class BalanceWatch:
    """What a poller saw of one account's balance while a burst ran."""

    samples: list[int] = dataclasses.field(default_factory=list)
    error: BaseException | None = None

    @property
    def lowest(self) -> int | None:
        return min(self.samples, default=None)


@contextlib.contextmanager
def watching_balance(dsn: str, account_id: int) -> Iterator[BalanceWatch]:
    """Read ``account_id``'s balance every POLL_INTERVAL seconds, on its own connection."""
    watch = BalanceWatch()
    stop = threading.Event()
    connection = psycopg.connect(dsn, autocommit=True)

    def poll() -> None:
        try:
            while not stop.is_set():
                row = connection.execute(
                    "SELECT balance_cents FROM accounts WHERE id = %s", (account_id,)
                ).fetchone()
                if row is not None:
                    watch.samples.append(int(row[0]))
                stop.wait(POLL_INTERVAL)
        except BaseException as exc:  # reported by the check, not lost in the thread
            watch.error = exc

    thread = threading.Thread(target=poll, name="balance-poller", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(timeout=5)
        connection.close()
    if watch.error is not None:
        raise watch.error


# --- the checks ---------------------------------------------------------------------------


@hint(VALIDATE_FIRST)
def test_validation(db: psycopg.Connection[Any], http: httpx.Client, rng: random.Random) -> None:
    """Bad transfers and deposits are refused with 422 or 404 and change nothing"""
    a, b = seed_accounts(db, [rng.randint(10_000, 50_000) for _ in range(2)])
    unknown = unknown_account_id(db, rng)
    amount = rng.randint(1, 5_000)
    cases = [
        ("an amount of 0", transfer(a, b, 0), 422),
        ("a negative amount", transfer(a, b, -amount), 422),
        ("an amount that is not a whole number of cents",
         transfer(a, b, amount + rng.choice([0.5, 0.25, 0.01])), 422),
        ("an account paying itself", transfer(a, a, amount), 422),
        ("an unknown sender", transfer(unknown, b, amount), 404),
        ("an unknown receiver", transfer(a, unknown, amount), 404),
        ("a deposit of 0", deposit(a, 0), 422),
        ("a deposit to an unknown account", deposit(unknown, amount), 404),
    ]
    rng.shuffle(cases)
    initial, entries = balances_of(db, [a, b]), ledger_size(db)

    for case, request, status in cases:
        response = send(http, request)
        expect(
            response.status_code == status,
            f"A request with {case} should be refused with {status}, not "
            f"{response.status_code}.",
            expected=status, actual=describe(response),
        )
        problem = expect_problem(response, status)
        expect(
            status != 404 or str(unknown) in str(problem.get("detail")),
            f"A request with {case} was refused with 404; its detail should say which account "
            f"is missing (id {unknown}).",
            expected=f"a detail naming {unknown}", actual=describe(response),
        )
        after, entries_after = balances_of(db, [a, b]), ledger_size(db)
        expect(
            after == initial and entries_after == entries,
            f"A request with {case} was refused, so balances and the ledger must not change; "
            f"balances went from {initial} to {after}, and the ledger from {entries} to "
            f"{entries_after} rows.",
        )


@hint(ONE_TRANSACTION)
def test_atomicity(db: psycopg.Connection[Any], http: httpx.Client, rng: random.Random) -> None:
    """A transfer that fails at any of its writes leaves no trace"""
    for fail_from in range(1, MAX_WRITES + 2):
        sender, receiver = seed_accounts(db, [rng.randint(10_000, 50_000),
                                              rng.randint(0, 5_000)])
        initial = balances_of(db, [sender, receiver])
        amount = rng.randint(1, 5_000)
        with failing_writes(db, sender, receiver, fail_from=fail_from) as log:
            response = send(http, transfer(sender, receiver, amount))
            writes, account = log.digits(), log.account(fail_from)
        if len(writes) < fail_from:
            # This transfer has fewer writes: it ran untouched and every write got its turn.
            expect(
                response.status_code == 201,
                f"With no write made to fail, a transfer of {amount} cents should succeed; it "
                f"wrote {account} and answered {response.status_code}.",
                expected=201, actual=describe(response),
            )
            created_transfer_id(response, transfer(sender, receiver, amount)[2])
            break
        what = (f"The grader made the database refuse write {fail_from} of a {amount}-cent "
                f"transfer (and any write after it); your app wrote {account}")
        expect(
            response.status_code >= 500 or response.status_code == 409,
            f"{what}. The transfer cannot have happened: expected a 5xx or 409, not "
            f"{response.status_code}.",
            expected="5xx or 409", actual=describe(response),
        )
        final = balances_of(db, [sender, receiver])
        changed = [
            f"the {role}'s balance went from {initial[account_id]} to {final[account_id]}"
            for role, account_id in (("sender", sender), ("receiver", receiver))
            if final[account_id] != initial[account_id]
        ]
        leftovers = ledger_rows(db, [sender, receiver])
        if leftovers:
            changed.append(f"{len(leftovers)} ledger row(s) remain: {leftovers}")
        expect(
            not changed,
            f"{what}. A transfer happens entirely or not at all, so nothing may change; but "
            f"{' and '.join(changed)}: the writes before the failure were committed on their "
            "own.",
            expected="balances unchanged, no ledger rows", actual="; ".join(changed),
        )
    else:
        raise Failure(f"A transfer made more than {MAX_WRITES} writes to its two accounts and "
                      f"the ledger; the grader expects four ({', '.join(WRITE_NAMES.values())}).")


@hint(RETRY_TRANSIENT_ONLY)
def test_permanent_errors_not_retried(
    db: psycopg.Connection[Any], http: httpx.Client, rng: random.Random
) -> None:
    """A transfer whose write breaks a constraint is refused once, never retried"""
    sender, receiver = seed_accounts(db, [rng.randint(10_000, 50_000), rng.randint(0, 5_000)])
    initial = balances_of(db, [sender, receiver])
    amount = rng.randint(1, 5_000)
    with failing_writes(db, sender, receiver, fail_from=1, only_once=True,
                        sqlstate=PERMANENT_SQLSTATE) as log:
        response = send(http, transfer(sender, receiver, amount))
        writes, account = log.digits(), log.account(1, only_once=True)
    expect(
        len(writes) == 1 and (response.status_code >= 500 or response.status_code == 409),
        f"The grader made the first write of a {amount}-cent transfer fail with SQLSTATE "
        f"{PERMANENT_SQLSTATE} (check_violation), an error that fails the same way every time. "
        f"Your app wrote {account}, and answered {response.status_code}: it tried the transfer "
        "again. Retry only deadlocks (40P01) and serialization failures (40001).",
        expected="one write, then a 5xx or 409",
        actual=f"{account}; then {describe(response)}",
    )
    final = balances_of(db, [sender, receiver])
    expect(final == initial and not ledger_rows(db, [sender, receiver]),
           "The refused transfer changed balances or wrote ledger rows.",
           expected=initial, actual=final)


@hint(LOST_UPDATE)
def test_overdraft_race(
    db: psycopg.Connection[Any], app_url: str, stack: Any, rng: random.Random
) -> None:
    """50 simultaneous transfers from one account spend its money exactly once"""
    amount = rng.randint(200, 2_000)
    opening = 10 * amount
    sender, *receivers = seed_accounts(db, [opening] + [rng.randint(0, 5_000) for _ in range(3)])
    requests = [transfer(sender, rng.choice(receivers), amount) for _ in range(50)]

    with slow_balance_updates(db), watching_balance(stack.dsn(), sender) as watch:
        outcomes, _ = send_waves(app_url, db, requests, concurrency=50)

    succeeded = sum(outcome.status == 201 for outcome in outcomes)
    refused = [outcome for outcome in outcomes if outcome.status == 409]
    final = balances_of(db, [sender])[sender]
    expect(
        succeeded == 10 and len(refused) == 40 and final == 0,
        f"Account A held {opening} cents and 50 transfers of {amount} were sent at once: "
        f"expected exactly 10 to succeed (201) and 40 to be refused (409), leaving A at 0. "
        f"{succeeded} succeeded; the answers were {tally(outcomes)}; A's balance ended at "
        f"{final}{'' if final == 0 else ', not 0'}.{sample_of(outcomes, {201, 409})}",
        expected="10 × 201, 40 × 409, A at 0",
        actual=f"{tally(outcomes)}, A at {final}",
    )
    for refusal in refused:
        assert refusal.response is not None
        expect_problem(refusal.response, 409)
    expect(
        watch.lowest is None or watch.lowest >= 0,
        f"A poller reading A's balance every {POLL_INTERVAL * 1000:g} ms during the transfers "
        f"saw it at {watch.lowest} cents: a balance must never go below zero.",
        expected=">= 0", actual=watch.lowest,
    )


@hint(LOST_UPDATE[0] + " " + ONE_TRANSACTION[0], LOST_UPDATE[1], ONE_TRANSACTION[1])
def test_conservation(db: psycopg.Connection[Any], app_url: str, rng: random.Random) -> None:
    """500 random transfers among 20 accounts keep the books balanced"""
    ids = seed_accounts(db, [rng.randint(2_000, 20_000) for _ in range(20)])
    initial = balances_of(db, ids)
    pairs = [rng.sample(ids, 2) for _ in range(500)]
    requests = [transfer(sender, receiver, rng.randint(1, 3_000)) for sender, receiver in pairs]

    outcomes, took = send_waves(app_url, db, requests, concurrency=20)

    expect_all_sent(outcomes, requests, took, BURST_DEADLINE, what="transfers")
    expect_only(outcomes, {201, 409}, what="transfers")
    expect_books_balance(db, initial, hint=LOST_UPDATE)
    expect_ledger_matches(db, ids, requests, outcomes)


@hint(LOCK_ORDER)
def test_no_deadlock(db: psycopg.Connection[Any], app_url: str, rng: random.Random) -> None:
    """200 transfers back and forth between two accounts finish within 20 s, with no 5xx"""
    a, b = seed_accounts(db, [rng.randint(1_000_000, 2_000_000) for _ in range(2)])
    initial = balances_of(db, [a, b])
    directions = [(a, b), (b, a)]
    requests = [transfer(*directions[i % 2], rng.randint(1, 5_000)) for i in range(200)]

    outcomes, took = send_waves(
        app_url, db, requests, concurrency=20, deadline=DEADLOCK_DEADLINE
    )

    expect_all_sent(
        outcomes, requests, took, DEADLOCK_DEADLINE, what="transfers",
        why="Transactions waiting on each other's locks are the usual cause.",
    )
    expect_only(outcomes, {201}, what="transfers (both accounts hold plenty)")
    expect_books_balance(db, initial, hint=LOST_UPDATE)


@hint(LOST_UPDATE)
def test_concurrent_deposits(
    db: psycopg.Connection[Any], app_url: str, rng: random.Random
) -> None:
    """100 simultaneous 1-cent deposits are all counted"""
    (account,) = seed_accounts(db, [rng.randint(0, 100_000)])
    opening = balances_of(db, [account])[account]

    with slow_balance_updates(db):
        deposits = [deposit(account, 1) for _ in range(100)]
        outcomes, _ = send_waves(app_url, db, deposits, concurrency=100)

    expect_only(outcomes, {200}, what="deposits")
    rise = balances_of(db, [account])[account] - opening
    expect(
        rise == 100,
        f"100 deposits of 1 cent each answered 200, so the balance should rise by exactly "
        f"100 cents; it rose by {rise}: {100 - rise} deposits were lost.",
        expected=100, actual=rise,
    )
    # Each deposit answers the balance right after it: one cent more than the one before it.
    reported = []
    for outcome in outcomes:
        assert outcome.response is not None
        body = json_body(outcome.response)
        reported.append(body.get("balance_cents") if isinstance(body, dict) else None)
    wanted = list(range(opening + 1, opening + 101))
    expect(
        sorted(reported, key=str) == sorted(wanted, key=str),
        f"Each deposit should answer the balance just after it, so the 100 answers should "
        f"report each of {opening + 1} to {opening + 100} once; "
        f"{len(set(map(str, reported)) & set(map(str, wanted)))} distinct ones of those came "
        "back. Return the balance that your UPDATE ... RETURNING wrote, not one read around it.",
        expected=f"{opening + 1} … {opening + 100}, once each",
        actual=short_list(sorted(reported, key=str)),
    )
