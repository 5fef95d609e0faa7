"""Checks for the pagination exercise: cursor (keyset) pagination, filtering and sorting.

Every check seeds its own rows straight into Postgres (the items table is fixed by the
exercise), walks GET /items by following next_cursor, and compares what arrived with the
order SQL gives: (created_at DESC, id DESC). Ids, timestamps, statuses, page sizes and the
filter are random on every run.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import json
import math
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import psycopg
import pytest

from bb.grader import Failure, HintText, describe, expect, expect_problem, hint, json_body

# Each hint is its levels, shortest first: a check that fails again on a later grade shows
# the next one (bb hint --next CHECK reveals it on request).
OFFSET_SHIFTS = (
    "OFFSET counts positions, and positions shift when rows are inserted or deleted. Seek past "
    "the last key you returned: WHERE (created_at, id) < (:c, :i) ORDER BY created_at DESC, "
    "id DESC LIMIT :n, with (created_at, id) of the last row carried in the cursor.",
    "Page 2 of OFFSET 20 means \"skip whatever is in the first 20 places now\": five rows "
    "inserted on top since page 1 push five rows you already sent back into page 2, and a "
    "deleted row makes one you never sent jump over the boundary. A cursor that holds the "
    "last row's (created_at, id) names a place in the data, not a position, so writes above "
    "it change nothing below it. Put those two values in the cursor, not a count.",
)
TIE_BREAKER = (
    "Ties on created_at need a unique tie-breaker (id) in both the ORDER BY and the cursor, "
    "compared as one row value: (created_at, id) < (:c, :i). Keep created_at to the "
    "microsecond in the cursor.",
    "When 100 rows share one created_at, `WHERE created_at < :c` skips the rest of that "
    "second's rows and `<=` repeats them. Order by `created_at DESC, id DESC`, and seek with "
    "the row comparison `tuple_(Item.created_at, Item.id) < tuple_(c, i)` in SQLAlchemy: it "
    "means created_at < c, or the same created_at and a smaller id. Serialise created_at "
    "with isoformat() (microseconds and offset kept), never to whole seconds.",
)
VALIDATE_INPUT = (
    "Cap limit: Query(ge=1, le=100) makes anything else a 422. The cursor is client input: "
    "sign it (HMAC-SHA256 with a server secret), check the signature and the payload, and "
    "answer 400 when it is garbage or was changed, never 500.",
    "A cursor is base64 of a small JSON payload plus `hmac.new(secret, payload, "
    "hashlib.sha256).digest()`. Decoding checks, in order, and answers 400 at the first "
    "failure: the base64 decodes, the signature matches (`hmac.compare_digest`, never ==), "
    "the JSON parses into the fields you expect with the right types. Wrap all of it in one "
    "function that raises HTTPException(400), so no malformed cursor ever reaches SQL.",
)
FILTERS_IN_CURSOR = (
    "Put the walk's filters in the (signed) cursor: later pages arrive with only cursor and "
    "limit, and must keep status and created_after (created_at > created_after, strictly). "
    "A cursor sent with other filters than its own is a 400.",
    "The first request carries ?status=done&created_after=...; the next carries only "
    "?cursor=.... Store status and created_after in the cursor's payload beside (created_at, "
    "id), and when a later request comes with a cursor, take the filters from the cursor. "
    "If that request also names a filter that differs from the cursor's, answer 400 rather "
    "than mixing two walks.",
)
INDEX_THE_SEEK = (
    "A keyset page is fast only with an index that matches the ORDER BY: add one on "
    "(created_at DESC, id DESC) in a new migration, and seek with WHERE (created_at, id) < "
    "(:c, :i). EXPLAIN (ANALYZE, BUFFERS) the query at page 900: it should read about 100 "
    "index entries, not 90,000 rows.",
    "Without it, Postgres reads and sorts the whole table to find the 100 rows after the "
    "cursor. Add a migration with `op.create_index(\"ix_items_created_at_id\", \"items\", "
    "[sa.text(\"created_at DESC\"), sa.text(\"id DESC\")])` (walks filtered by status want "
    "one on (status, created_at DESC, id DESC) too), and write the seek as a row comparison: "
    "two separate ORs of created_at and id cannot use the index as one range.",
)
NO_OFFSET = (
    "Every page must be a seek, not a skip: no OFFSET in any query on items (not even 0), "
    "whatever the cursor looks like. WHERE (created_at, id) < (:c, :i) ... LIMIT :n.",
)

STATUSES = ("todo", "doing", "done")
OFFSET_WORD = re.compile(r"\bOFFSET\b", re.IGNORECASE)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

#: Rows and page size of the plain walk, and how many of the rows share one created_at.
WALK_ROWS, WALK_TIES, WALK_LIMIT = 1_000, 100, 37
#: Rows written between two pages of the walk under writes: newer rows in, an unseen row out.
INSERTS_PER_PAGE, DELETES_PER_PAGE = 5, 1

#: The deep-page check: rows in the table, of which this many are inserted above the cursor
#: (so the page it points at lies ~900 pages of DEEP_LIMIT deep), and the page size.
DEEP_ROWS, DEEP_NEWER, DEEP_LIMIT = 200_000, 90_000, 100
#: Buffers Postgres touches per request (shared_blks_hit + shared_blks_read in
#: pg_stat_statements): the cost of the query itself, which a busy machine does not change.
#: Measured on a shared 2-core machine at load average 20-40: reference 3.8-8.4 per request
#: (5 grades of its deep page); keyset without an index 1,696; the OFFSET starter fails
#: before that (its cursor points at other rows once rows are inserted above it).
DEEP_BUFFERS = 100
#: p95 latency of the deep page, over DEEP_SAMPLES sequential requests, may be at most
#: DEEP_P95_RATIO times the p95 of the first page measured in between (or the floor, on a
#: quiet machine where both take a few ms). Reference, same 5 grades: ratio 0.76-1.18, with
#: both p95s between 0.5 and 1.2 s, which is why no absolute latency is judged here.
DEEP_P95_RATIO, DEEP_P95_FLOOR_MS = 3.0, 30.0
DEEP_SAMPLES, DEEP_WARMUP = 50, 3
#: No new pair of requests starts after this many seconds (a page that scans the table may take
#: seconds on a busy machine); what was measured by then is judged.
DEEP_DEADLINE = 45.0


# --- checks that need another check ------------------------------------------------------

#: Checks that passed in this grade. A check that builds on another is skipped when that one
#: did not pass, with the reason, instead of failing for a cause the learner already sees.
PASSED: set[str] = set()


def recorded(test: Callable[..., None]) -> Callable[..., None]:
    """Remember that ``test`` passed (pytest follows __wrapped__ for the fixtures)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        test(*args, **kwargs)
        PASSED.add(test.__name__.removeprefix("test_"))

    return run


def require(check: str, why: str) -> None:
    if check not in PASSED:
        pytest.skip(f"can't check until {check} passes: {why}")


# --- pg_stat_statements (small local helpers; a shared grader tool may replace them) -------

#: Why pg_stat_statements could not be reset at the start of the grade, if it could not.
STATEMENTS_PROBLEM: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def statements_from_here_on(stack: Any) -> None:
    """Start counting statements when the checks start: after the migrations, before check 1."""
    try:
        with psycopg.connect(stack.dsn("db"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
    except psycopg.Error as exc:
        STATEMENTS_PROBLEM.append(str(exc).strip())


@dataclasses.dataclass(frozen=True)
class StatementTotals:
    calls: int
    buffers: int
    exec_ms: float


def statement_totals(db: psycopg.Connection[Any], table: str) -> StatementTotals:
    """Calls, buffers touched and execution time of every statement naming ``table`` so far."""
    row = db.execute(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(shared_blks_hit + shared_blks_read), 0), "
        "coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND query ~* %s AND query !~* 'pg_stat_statements' "
        "AND query !~* '^\\s*(insert|copy|vacuum|analyze|truncate|delete)'",
        (rf"\m{table}\M",),
    ).fetchone()
    assert row is not None
    return StatementTotals(int(row[0]), int(row[1]), float(row[2]))


def statements_on(db: psycopg.Connection[Any], table: str) -> list[tuple[str, int]]:
    """(normalised query text, calls) of every statement recorded that names ``table``."""
    rows = db.execute(
        "SELECT query, calls FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND query ~* %s AND query !~* 'pg_stat_statements' ORDER BY calls DESC",
        (rf"\m{table}\M",),
    ).fetchall()
    return [(str(query), int(calls)) for query, calls in rows]


# --- seeding and ground truth, straight in Postgres ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    id: int
    status: str
    created_at: dt.datetime
    title: str


def random_rows(
    rng: random.Random, count: int, *, tied: int = 0, first_id: int = 1
) -> list[Row]:
    """``count`` rows with random ids and statuses; ``tied`` of them share one created_at.

    Timestamps keep microseconds and some neighbours are 1 µs apart, so a cursor that rounds
    them loses rows. Ids are random, so neither insertion order nor heap order is id order.
    """
    newest = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        seconds=rng.randint(0, 2 * 365 * 86_400), microseconds=rng.randint(0, 999_999)
    )
    stamps, at = [], newest
    for _ in range(count - max(tied - 1, 0)):
        stamps.append(at)
        at -= rng.choice([
            dt.timedelta(microseconds=1),
            dt.timedelta(microseconds=rng.randint(2, 999_999)),
            dt.timedelta(seconds=rng.randint(1, 3_600), microseconds=rng.randint(0, 999_999)),
        ])
    if tied:
        # The tie group sits well inside the list, so pages start and end within it.
        where = rng.randint(len(stamps) // 4, len(stamps) // 2)
        stamps[where:where + 1] = [stamps[where]] * tied
    ids = rng.sample(range(first_id, first_id + 20 * count), count)
    words = ["alpha", "bravo", "cobalt", "delta", "ember", "fjord", "garnet", "harbor"]
    return [
        Row(id=ids[i], status=rng.choice(STATUSES), created_at=stamps[i],
            title=" ".join(rng.choices(words, k=3)))
        for i in range(count)
    ]


def reseed(db: psycopg.Connection[Any], rng: random.Random, rows: Sequence[Row]) -> None:
    """Empty items, then COPY ``rows`` in, in random order."""
    shuffled = list(rows)
    rng.shuffle(shuffled)
    try:
        empty_items(db)
        with db.cursor() as cur, \
                cur.copy("COPY items (id, status, created_at, title) FROM STDIN") as copy:
            for row in shuffled:
                copy.write_row((row.id, row.status, row.created_at, row.title))
        # Rows the grader inserts later take ids from the sequence: start it past ours.
        db.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), %s)",
                   (max(row.id for row in rows),))
        db.execute("ANALYZE items")
    except psycopg.Error as exc:
        raise schema_failure(exc) from None


def empty_items(db: psycopg.Connection[Any]) -> None:
    # A transaction your app leaves open would block TRUNCATE forever; give up after a while.
    db.execute("SET lock_timeout = '15s'")
    db.execute("TRUNCATE items")


def schema_failure(exc: psycopg.Error) -> Failure:
    return Failure(
        f"The grader could not seed the items table: {exc}".rstrip(),
        hint="The schema is fixed: keep items(id bigserial, status text, created_at "
        "timestamptz, title text) as the starter's migration makes it, and give any column "
        "you add a default.",
    )


def ordered_ids(
    db: psycopg.Connection[Any], *, status: str | None = None,
    created_after: dt.datetime | None = None, first: int | None = None,
) -> list[int]:
    """The ground truth: ids in (created_at DESC, id DESC) order, filtered like the API."""
    where, args = [], []
    if status is not None:
        where.append("status = %s")
        args.append(status)
    if created_after is not None:
        where.append("created_at > %s")
        args.append(created_after)
    sql = "SELECT id FROM items"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC"
    if first is not None:
        sql += f" LIMIT {int(first)}"
    return [int(row[0]) for row in db.execute(sql, args).fetchall()]


# --- walking the API ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Page:
    ids: list[int]
    items: list[dict[str, Any]]
    next_cursor: str | None
    response: httpx.Response


def shown(params: dict[str, Any]) -> str:
    """``GET /items?limit=37&cursor=eyJj…``, short enough for a message."""
    def short(value: Any) -> str:
        text = str(value)
        return text if len(text) <= 24 else text[:20] + "…"
    query = "&".join(f"{key}={short(value)}" for key, value in params.items())
    return f"GET /items{'?' + query if query else ''}"


def request_items(http: httpx.Client, params: dict[str, Any]) -> httpx.Response:
    for attempt in (1, 2):
        try:
            return http.get("/items", params=params)
        except httpx.RemoteProtocolError:
            # uvicorn closes a kept-alive connection after an unhandled exception (a 500), and
            # the next request on it fails. Once more, on a new connection, is the real answer.
            if attempt == 2:
                raise Failure(f"{shown(params)} got no answer: the server closed the "
                              f"connection twice.") from None
        except httpx.TransportError as exc:
            raise Failure(f"{shown(params)} got no answer: {type(exc).__name__} {exc}"
                          .rstrip()) from None
    raise AssertionError("unreachable")


def get_page(
    http: httpx.Client, params: dict[str, Any], *, hint: HintText | None = None
) -> Page:
    """One page, after checking it has the contract's shape: {"items": [...], "next_cursor"}."""
    response = request_items(http, params)
    expect(
        response.status_code == 200,
        f"{shown(params)} should answer 200, not {response.status_code}.",
        expected=200, actual=describe(response), hint=hint,
    )
    body = json_body(response)
    items = body.get("items") if isinstance(body, dict) else None
    cursor = body.get("next_cursor", ...) if isinstance(body, dict) else ...
    expect(
        isinstance(items, list) and all(
            isinstance(item, dict) and isinstance(item.get("id"), int) for item in items
        ) and (cursor is None or isinstance(cursor, str)),
        f'{shown(params)} should answer {{"items": [{{"id": <int>, ...}}, ...], '
        f'"next_cursor": <string or null>}}.',
        expected='{"items": [...], "next_cursor": str | null}', actual=describe(response),
    )
    assert isinstance(items, list)
    expect(
        cursor is None or cursor != params.get("cursor"),
        f"{shown(params)} answered with the same next_cursor it was sent, so a client "
        f"following next_cursor would fetch this page forever.",
        hint=hint,
    )
    return Page([int(item["id"]) for item in items], items, cursor, response)


def walk(
    http: httpx.Client,
    *,
    limit: int,
    filters: dict[str, Any] | None = None,
    expected_rows: int,
    between_pages: Callable[[list[int]], None] | None = None,
    each_page: Callable[[int, list[int]], None] | None = None,
    hint: HintText | None = None,
) -> list[list[int]]:
    """Follow next_cursor from the first page until it is null; return each page's ids.

    The first request carries ``filters``; later ones only ``limit`` and ``cursor``, as a
    client following next_cursor sends them. ``each_page`` checks every page as it arrives
    (its number from 1, its ids); ``between_pages`` runs after every page that has a
    successor, with the ids seen so far.
    """
    params: dict[str, Any] = {"limit": limit, **(filters or {})}
    pages: list[list[int]] = []
    seen: list[int] = []
    # Twice the pages the rows need, and then some: a walk that goes on longer never ends.
    most = 2 * math.ceil(max(expected_rows, 1) / limit) + 10
    while True:
        page = get_page(http, params, hint=hint)
        expect(
            len(page.ids) <= limit,
            f"{shown(params)} returned {len(page.ids)} items; a page holds at most limit.",
            expected=f"<= {limit}", actual=len(page.ids),
        )
        pages.append(page.ids)
        seen += page.ids
        if each_page is not None:
            each_page(len(pages), page.ids)
        if page.next_cursor is None:
            return pages
        expect(
            len(pages) < most,
            f"After {len(pages)} pages of limit={limit} ({len(seen)} items, "
            f"{len(set(seen))} distinct) for {expected_rows} rows, next_cursor was still not "
            f"null: the walk does not end.",
            expected=f"null next_cursor within {most} pages", actual=f"{len(pages)} pages",
            hint=hint,
        )
        if between_pages is not None:
            between_pages(seen)
        params = {"limit": limit, "cursor": page.next_cursor}


def first_few(values: Sequence[object], limit: int = 5) -> str:
    shown_values = ", ".join(str(value) for value in values[:limit])
    return shown_values + (f", and {len(values) - limit} more" if len(values) > limit else "")


def where_seen(pages: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    """id → the (1-based) numbers of the pages it came on."""
    found: dict[int, list[int]] = {}
    for number, ids in enumerate(pages, start=1):
        for item_id in ids:
            found.setdefault(item_id, []).append(number)
    return found


def tie_note(ids: Sequence[int], rows: dict[int, Row]) -> str:
    """' (all N share created_at X ...)' when the rows in question are a tie group."""
    stamps = Counter(rows[item_id].created_at for item_id in ids if item_id in rows)
    if not stamps:
        return ""
    stamp, count = stamps.most_common(1)[0]
    sharing = sum(1 for row in rows.values() if row.created_at == stamp)
    if sharing > 1 and count == len(ids):
        return (f" All of them share created_at {stamp.isoformat()} with {sharing - count} "
                f"other rows: the cursor does not tell tied rows apart.")
    return ""


def expect_walk_matches(
    pages: Sequence[Sequence[int]],
    truth: Sequence[int],
    rows: dict[int, Row],
    *,
    what: str,
    hint: HintText | None = None,
) -> None:
    """The walk returned exactly ``truth``: no repeats, nothing missing or extra, same order."""
    seen = [item_id for page in pages for item_id in page]
    found = where_seen(pages)
    repeated = [item_id for item_id, on in found.items() if len(on) > 1]
    expect(
        not repeated,
        f"{what}: {len(repeated)} ids came more than once, e.g. "
        f"{first_few([f'{i} (pages {found[i][0]} and {found[i][1]})' for i in repeated], 3)}."
        f"{tie_note(repeated, rows)}",
        expected="every id once", actual=f"{len(seen)} items, {len(set(seen))} distinct",
        hint=hint,
    )
    missing = [item_id for item_id in truth if item_id not in found]
    extra = [item_id for item_id in seen if item_id not in set(truth)]
    expect(
        not missing and not extra,
        f"{what}: expected the {len(truth)} rows SQL returns; "
        + (f"{len(missing)} never came ({first_few(missing)})" if missing else "")
        + ("; " if missing and extra else "")
        + (f"{len(extra)} came that should not ({first_few(extra)})" if extra else "")
        + f".{tie_note(missing, rows)}",
        expected=f"{len(truth)} rows", actual=f"{len(set(seen))} distinct rows",
        hint=hint,
    )
    for position, (wanted, got) in enumerate(zip(truth, seen, strict=True)):
        if wanted != got:
            raise Failure(
                f"{what}: the order differs from ORDER BY created_at DESC, id DESC from item "
                f"{position + 1} (page {position // max(len(pages[0]), 1) + 1}) on: expected id "
                f"{wanted} (created_at {rows[wanted].created_at.isoformat()}), got id {got} "
                f"(created_at {rows[got].created_at.isoformat()}).",
                expected=wanted, actual=got, hint=hint,
            )


# --- latency (a small local helper; a shared grader tool may replace it) -----------------


def timed_pairs(
    http: httpx.Client, deep: dict[str, Any], shallow: dict[str, Any], *, rounds: int,
    deadline: float,
) -> tuple[list[float], list[float], list[httpx.Response]]:
    """Up to ``rounds`` sequential GET /items of the deep page, each followed by one of the
    first page; no new round starts after ``deadline`` seconds.

    Interleaved, the two series see the same machine: on a busy host both slow down alike,
    so their ratio measures what depth costs, and the load does not.
    """
    deep_times: list[float] = []
    shallow_times: list[float] = []
    responses: list[httpx.Response] = []
    started = time.perf_counter()
    while len(deep_times) < rounds and time.perf_counter() - started < deadline:
        for params, times in ((deep, deep_times), (shallow, shallow_times)):
            began = time.perf_counter()
            response = request_items(http, params)
            times.append(time.perf_counter() - began)
            if params is deep:
                responses.append(response)
    return deep_times, shallow_times, responses


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of raw samples."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# --- cursors a client should never get away with ------------------------------------------


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def forged(cursor: str) -> str | None:
    """The cursor with one number in its payload changed, if it is readable base64url JSON.

    An unsigned cursor is a promise nobody can check: a client can edit it and the server
    obeys. A signed one fails its signature. Returns None when the payload isn't readable.
    """
    parts = cursor.split(".")
    for index, part in enumerate(parts):
        try:
            payload = json.loads(_unb64(part))
        except (binascii.Error, ValueError):
            continue
        if not isinstance(payload, (dict, list, int)):
            continue
        edited = json.dumps(_bump_numbers(payload), separators=(",", ":")).encode()
        if edited == json.dumps(payload, separators=(",", ":")).encode():
            continue
        text = base64.urlsafe_b64encode(edited).decode()
        parts[index] = text if part.endswith("=") else text.rstrip("=")
        return ".".join(parts)
    return None


def _bump_numbers(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value - 1 if value > 1 else value + 2
    if isinstance(value, dict):
        return {key: _bump_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_bump_numbers(item) for item in value]
    return value


def flipped(cursor: str, rng: random.Random) -> str | None:
    """The cursor with one letter or digit in its middle changed to another."""
    middle = [i for i, ch in enumerate(cursor)
              if ch.isascii() and ch.isalnum() and len(cursor) // 4 <= i <= 3 * len(cursor) // 4]
    if not middle:
        return None
    at = rng.choice(middle)
    other = rng.choice([ch for ch in string.ascii_letters + string.digits if ch != cursor[at]])
    return cursor[:at] + other + cursor[at + 1:]


def bad_cursors(cursor: str, rng: random.Random) -> list[tuple[str, str]]:
    """(what it is, the cursor) for garbage and for tampered copies of a real ``cursor``."""
    noise = "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(12, 40)))
    cases = [
        ("garbage", noise),
        ("garbage", "not-a-cursor"),
        ("garbage", "'; DROP TABLE items; --"),
        ("base64 of random bytes",
         base64.urlsafe_b64encode(rng.randbytes(rng.randint(8, 48))).decode().rstrip("=")),
        ("base64 of a JSON list", base64.urlsafe_b64encode(b"[1, 2, 3]").decode()),
    ]
    for _ in range(2):
        tampered = flipped(cursor, rng)
        if tampered is not None and tampered != cursor:
            cases.append(("a real cursor with one character changed", tampered))
    if len(cursor) >= 8:
        cases.append(("a real cursor cut short", cursor[: len(cursor) - rng.randint(3, 6)]))
    edited = forged(cursor)
    if edited is not None:
        cases.append(("a real cursor whose payload was edited (a number changed)", edited))
    return cases


# --- the checks ---------------------------------------------------------------------------


@hint(TIE_BREAKER)
@recorded
def test_walk_order(db: psycopg.Connection[Any], http: httpx.Client, rng: random.Random) -> None:
    """Walking 1,000 rows (100 sharing one created_at) with limit=37 returns each once, in order"""
    rows = random_rows(rng, WALK_ROWS, tied=WALK_TIES)
    reseed(db, rng, rows)
    truth = ordered_ids(db)

    pages = walk(http, limit=WALK_LIMIT, expected_rows=len(truth), hint=TIE_BREAKER)

    expect_walk_matches(
        pages, truth, {row.id: row for row in rows},
        what=f"Following next_cursor with limit={WALK_LIMIT} over {len(truth)} rows",
        hint=TIE_BREAKER,
    )


@hint(OFFSET_SHIFTS)
def test_walk_during_writes(
    db: psycopg.Connection[Any], http: httpx.Client, rng: random.Random
) -> None:
    """A walk sees every row once while newer rows arrive and unseen rows are deleted"""
    require("walk_order", "a walk must work on a quiet table first")
    rows = random_rows(rng, rng.randint(400, 600), tied=rng.randint(2, 8))
    reseed(db, rng, rows)
    truth = ordered_ids(db)
    newest = max(row.created_at for row in rows)
    deleted: list[int] = []
    inserted: list[int] = []

    def write_between_pages(seen: list[int]) -> None:
        # As other clients would: new rows at the top of the list, and a row further down,
        # one this walk has not reached yet, removed.
        nonlocal newest
        for _ in range(INSERTS_PER_PAGE):
            newest += dt.timedelta(seconds=rng.randint(1, 60), microseconds=rng.randint(0, 999))
            row = db.execute(
                "INSERT INTO items (status, created_at, title) VALUES (%s, %s, %s) RETURNING id",
                (rng.choice(STATUSES), newest, "arrived during the walk"),
            ).fetchone()
            assert row is not None
            inserted.append(int(row[0]))
        visited = set(seen)
        unseen = [item_id for item_id in truth if item_id not in visited and item_id not in deleted]
        for item_id in rng.sample(unseen, min(DELETES_PER_PAGE, len(unseen))):
            db.execute("DELETE FROM items WHERE id = %s", (item_id,))
            deleted.append(item_id)

    limit = rng.randint(20, 40)
    pages = walk(http, limit=limit, expected_rows=len(truth),
                 between_pages=write_between_pages, hint=OFFSET_SHIFTS)

    seen = [item_id for page in pages for item_id in page]
    found = where_seen(pages)
    what = (f"Walking {len(truth)} rows with limit={limit} while {INSERTS_PER_PAGE} newer rows "
            f"were inserted and {DELETES_PER_PAGE} unseen row deleted after every page")
    repeated = [item_id for item_id, on in found.items() if len(on) > 1]
    expect(
        not repeated,
        f"{what}: {len(repeated)} ids came twice, e.g. "
        f"{first_few([f'{i} (pages {found[i][0]} and {found[i][1]})' for i in repeated], 3)}. "
        f"Rows inserted above the walk pushed the rows it had already sent into the next page.",
        expected="0 repeated ids", actual=f"{len(repeated)} repeated ids",
    )
    gone = [item_id for item_id in deleted if item_id in found]
    expect(
        not gone,
        f"{what}: {len(gone)} rows deleted before the walk reached them were still returned "
        f"({first_few(gone)}).",
        expected="no deleted rows", actual=f"{len(gone)} deleted rows returned",
    )
    survivors = [item_id for item_id in truth if item_id not in set(deleted)]
    missing = [item_id for item_id in survivors if item_id not in found]
    expect(
        not missing,
        f"{what}: {len(missing)} of the {len(survivors)} surviving rows never came "
        f"({first_few(missing)}). Deleting rows below the walk pulled unseen rows onto pages it "
        f"had already passed.",
        expected=f"{len(survivors)} surviving rows", actual=f"{len(survivors) - len(missing)}",
    )
    originals = [item_id for item_id in seen if item_id in set(survivors)]
    expect(
        originals == survivors,
        f"{what}: the surviving rows came in another order than ORDER BY created_at DESC, id "
        f"DESC.",
    )


@hint(VALIDATE_INPUT)
def test_validation(db: psycopg.Connection[Any], http: httpx.Client, rng: random.Random) -> None:
    """limit defaults to 20 and is capped at 100 (else 422); a bad or tampered cursor is a 400"""
    rows = random_rows(rng, rng.randint(150, 250))
    reseed(db, rng, rows)

    page = get_page(http, {})
    expect(
        len(page.ids) == DEFAULT_LIMIT,
        f"GET /items without limit should return {DEFAULT_LIMIT} items (the default limit); "
        f"it returned {len(page.ids)}.",
        expected=DEFAULT_LIMIT, actual=len(page.ids),
    )
    page = get_page(http, {"limit": MAX_LIMIT})
    expect(
        len(page.ids) == MAX_LIMIT,
        f"GET /items?limit={MAX_LIMIT} (the largest page allowed) should return {MAX_LIMIT} "
        f"items; it returned {len(page.ids)}.",
        expected=MAX_LIMIT, actual=len(page.ids),
    )
    for limit in [0, -rng.randint(1, 50), MAX_LIMIT + 1, rng.randint(MAX_LIMIT + 2, 100_000)]:
        response = request_items(http, {"limit": limit})
        expect(
            response.status_code == 422,
            f"GET /items?limit={limit} should be refused with 422 (limit must be 1 to "
            f"{MAX_LIMIT}), not answered {response.status_code}.",
            expected=422, actual=describe(response),
        )
        expect_problem(response, 422)

    real = get_page(http, {"limit": rng.randint(5, 30)}).next_cursor
    expect(
        real is not None,
        f"A first page of a {len(rows)}-row table should carry a next_cursor.",
        expected="a string", actual=real,
    )
    assert real is not None
    get_page(http, {"cursor": real})  # the real one is fine, or nothing below means anything

    cases = bad_cursors(real, rng)
    wrong = []
    for what, cursor in cases:
        response = request_items(http, {"cursor": cursor})
        if response.status_code != 400:
            wrong.append(f"{what} ({cursor[:40]!r}) → {response.status_code}")
        else:
            expect_problem(response, 400)
    expect(
        not wrong,
        f"Every cursor the API did not issue should be refused with 400 problem+json, never "
        f"a 5xx nor a page: {len(wrong)} of {len(cases)} were not: {'; '.join(wrong)}.",
        expected="400", actual="; ".join(wrong),
    )


@hint(FILTERS_IN_CURSOR)
def test_filtered_walk(
    db: psycopg.Connection[Any], http: httpx.Client, rng: random.Random
) -> None:
    """A walk filtered by status and created_after returns exactly the rows SQL does"""
    require("walk_order", "a filtered walk is a walk")
    rows = random_rows(rng, WALK_ROWS, tied=rng.randint(10, 40))
    reseed(db, rng, rows)
    status = rng.choice(STATUSES)
    # The bound is the created_at of a row of that status: that row itself must not come back.
    candidates = sorted((row for row in rows if row.status == status),
                        key=lambda row: row.created_at)
    bound = candidates[rng.randint(len(candidates) // 4, len(candidates) // 2)].created_at
    truth = ordered_ids(db, status=status, created_after=bound)
    filters = {"status": status, "created_after": bound.isoformat()}
    limit = rng.randint(7, 19)

    by_id = {row.id: row for row in rows}
    started = (f"A walk started with status={status}&created_after={bound.isoformat()} "
               f"(limit={limit})")

    def only_matching_rows(number: int, ids: list[int]) -> None:
        wrong_status = [item_id for item_id in ids
                        if item_id in by_id and by_id[item_id].status != status]
        expect(
            not wrong_status,
            f"{started} returned {len(wrong_status)} row(s) of another status on page {number} "
            f"(e.g. id {first_few(wrong_status, 1)}). Pages after the first are requested with "
            f"only limit and cursor: the cursor must carry the filters.",
            expected=f"only status {status}", actual=f"{len(wrong_status)} rows of other statuses",
        )
        too_old = [item_id for item_id in ids
                   if item_id in by_id and by_id[item_id].created_at <= bound]
        expect(
            not too_old,
            f"{started} returned {len(too_old)} row(s) on page {number} created at or before "
            f"{bound.isoformat()} (e.g. id {first_few(too_old, 1)}): created_after keeps rows "
            f"created strictly after it, on every page.",
            expected=f"created_at > {bound.isoformat()}", actual=f"{len(too_old)} older rows",
        )

    pages = walk(http, limit=limit, filters=filters, expected_rows=len(truth),
                 each_page=only_matching_rows, hint=FILTERS_IN_CURSOR)

    expect_walk_matches(pages, truth, by_id,
                        what=f"The walk with status={status}&created_after=… (limit={limit})",
                        hint=FILTERS_IN_CURSOR)

    if len(pages) > 1:
        first = get_page(http, {"limit": limit, **filters})
        other = rng.choice([s for s in STATUSES if s != status])
        assert first.next_cursor is not None
        response = request_items(http, {"limit": limit, "cursor": first.next_cursor,
                                        "status": other})
        expect(
            response.status_code == 400,
            f"A cursor from a walk filtered by status={status}, sent with status={other}, "
            f"should be refused with 400: a cursor belongs to its walk's filters. It answered "
            f"{response.status_code}.",
            expected=400, actual=describe(response),
        )
        expect_problem(response, 400)


@hint(INDEX_THE_SEEK)
def test_deep_page(db: psycopg.Connection[Any], http: httpx.Client, app_url: str,
                   rng: random.Random) -> None:
    """On 200,000 rows, a page 90,000 rows deep costs what the first does: few buffers, same p95"""
    require("walk_order", "the deep page must first be the right page")
    # Walking 900 pages would take minutes on a busy machine. The same depth comes cheaper:
    # take a cursor near the top of the older rows, then insert DEEP_NEWER newer rows above
    # it. The cursor now points ~DEEP_NEWER rows deep, as if a client had walked there.
    newest_old = seed_many(db, rng, DEEP_ROWS - DEEP_NEWER, empty=True)
    older = ordered_ids(db, first=2 * DEEP_LIMIT)
    first = get_page(http, {"limit": DEEP_LIMIT}, hint=TIE_BREAKER)
    expect(
        first.ids == older[:DEEP_LIMIT] and first.next_cursor is not None,
        f"GET /items?limit={DEEP_LIMIT} on {DEEP_ROWS - DEEP_NEWER} rows should return the "
        f"first {DEEP_LIMIT} rows of the list and a next_cursor; it did not (first id "
        f"{first.ids[:1]}, expected {older[:1]}; next_cursor {first.next_cursor!r}).",
        hint=TIE_BREAKER,
    )
    seed_many(db, rng, DEEP_NEWER, empty=False, newer_than=newest_old)
    expected_ids = older[DEEP_LIMIT:]
    params = {"limit": DEEP_LIMIT, "cursor": first.next_cursor}
    depth = DEEP_NEWER + DEEP_LIMIT

    shallow = {"limit": DEEP_LIMIT}
    for _ in range(DEEP_WARMUP):  # connections, caches and prepared statements settle first
        request_items(http, params)
        request_items(http, shallow)
    before = statement_totals(db, "items")
    deep_times, shallow_times, responses = timed_pairs(
        http, params, shallow, rounds=DEEP_SAMPLES, deadline=DEEP_DEADLINE)
    after = statement_totals(db, "items")
    sent = len(deep_times)

    wrong = [response for response in responses if response.status_code != 200]
    expect(
        not wrong,
        f"{len(wrong)} of {sent} requests for the page {depth:,} rows deep failed, "
        f"e.g. {describe(wrong[0]) if wrong else ''}.",
    )
    body = json_body(responses[0])
    got = [item.get("id") for item in body.get("items", [])] if isinstance(body, dict) else []
    expect(
        got == expected_ids,
        f"A cursor taken after the first {DEEP_LIMIT} rows must go on from its last row even "
        f"after {DEEP_NEWER:,} newer rows were inserted above it: the next page should hold the "
        f"rows that followed it (first id {expected_ids[:1]}); it holds others (first id "
        f"{got[:1]}). An offset in a cursor now points at other rows.",
        expected=expected_ids[:3], actual=got[:3], hint=OFFSET_SHIFTS,
    )

    # Per request: the deep and the first page each ran `sent` times in this window.
    buffers = (after.buffers - before.buffers) / (2 * sent)
    db_ms = (after.exec_ms - before.exec_ms) / (2 * sent)
    expect(
        buffers < DEEP_BUFFERS,
        f"Postgres touched {buffers:,.0f} buffers (8 KB pages) per request for the page "
        f"{depth:,} rows deep ({db_ms:.1f} ms of SQL per request, pg_stat_statements); threshold "
        f"{DEEP_BUFFERS}. A seek on a matching index reads a few index pages and the rows it "
        f"returns; thousands mean a scan of the table or a skip over rows.",
        expected=f"< {DEEP_BUFFERS} buffers per request", actual=f"{buffers:,.0f}",
    )
    p95 = percentile(deep_times, 95) * 1000
    first_p95 = percentile(shallow_times, 95) * 1000
    allowed = max(DEEP_P95_FLOOR_MS, DEEP_P95_RATIO * first_p95)
    expect(
        p95 < allowed,
        f"{sent} sequential requests for the page {depth:,} rows deep: p95 {p95:.1f} ms; "
        f"the first page, requested in between, p95 {first_p95:.1f} ms. A deep page may cost "
        f"at most {DEEP_P95_RATIO:g}x the first page (or {DEEP_P95_FLOOR_MS:g} ms): threshold "
        f"{allowed:.1f} ms.",
        expected=f"p95 < {allowed:.1f} ms", actual=f"p95 {p95:.1f} ms",
    )


def seed_many(
    db: psycopg.Connection[Any], rng: random.Random, count: int, *, empty: bool,
    newer_than: dt.datetime | None = None,
) -> dt.datetime:
    """``count`` rows in one INSERT ... SELECT generate_series; returns the newest created_at.

    All of them are newer than ``newer_than`` when it is given.
    Every second pair of rows shares a created_at, so the tie-breaker matters at any depth.
    """
    step = dt.timedelta(seconds=rng.uniform(0.5, 3.0))
    if newer_than is not None:
        newest = newer_than + step * (count // 2 + 2)
    else:
        newest = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            seconds=rng.randint(0, 365 * 86_400), microseconds=rng.randint(0, 999_999))
    shift = rng.randint(0, 2)
    try:
        if empty:
            empty_items(db)
        db.execute(
            "INSERT INTO items (status, created_at, title) "
            "SELECT (ARRAY['todo', 'doing', 'done'])[1 + (g + %s) %% 3], "
            "       %s - (g / 2) * %s::interval, 'item ' || g "
            "FROM generate_series(1, %s) AS g",
            (shift, newest, step, count),
        )
        # Fresh statistics, as autovacuum would soon have them: the planner sees 200k rows.
        db.execute("ANALYZE items")
    except psycopg.Error as exc:
        raise schema_failure(exc) from None
    return newest


@hint(NO_OFFSET)
def test_no_offset(db: psycopg.Connection[Any]) -> None:
    """No statement run against items during the checks uses OFFSET (pg_stat_statements)"""
    require("walk_order", "the app must have served walks for their statements to be judged")
    if STATEMENTS_PROBLEM:
        raise RuntimeError(f"pg_stat_statements is not available in this course's Postgres: "
                           f"{STATEMENTS_PROBLEM[0]}")
    statements = statements_on(db, "items")
    offsets = [(query, calls) for query, calls in statements if OFFSET_WORD.search(query)]
    calls = sum(count for _, count in offsets)
    sample = " ".join(offsets[0][0].split()) if offsets else ""
    expect(
        not offsets,
        f"pg_stat_statements recorded {len(offsets)} distinct statements on items with OFFSET, "
        f"run {calls} times during the checks, e.g.: {sample[:400]}",
        expected="no OFFSET", actual=f"{calls} calls with OFFSET",
    )
