"""Checks for the indexing exercise: three read paths that must use the right indexes.

The grader seeds 50,000 customers, 500,000 orders and 50,000 products once per grade, straight
into Postgres with generate_series (the tables are fixed by the exercise), with a different
salt, name lists and heavy customers every run. Then it calls the three endpoints and judges
what Postgres did for them: the plans auto_explain logged, the indexes pg_index lists, the
buffers pg_stat_statements counted. Latency is measured as the spec asks, next to the buffers,
which a busy machine does not change.

The non-blocking build runs last: it downgrades the schema to the exercise's first revision
and runs `alembic upgrade head` again (a one-off container of the learner's image) while the
grader writes to the tables, so it leaves the indexes as it found them.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
import string
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bb.grader import Failure, burst, describe, expect, hint, json_body, percentile
from bb.grader.pg import Index, Plan, Postgres, expect_same_rows, parse_lock_waits

READ_PLANS = (
    "Run EXPLAIN (ANALYZE, BUFFERS) on each query against the grader's row counts (500,000 "
    "orders): on a tiny table the planner rightly prefers a Seq Scan. Add the indexes in a new "
    "migration: (customer_id, status, created_at DESC) on orders, lower(email) on customers, a "
    "GIN gin_trgm_ops index on products.name."
)
COLUMN_ORDER = (
    "Put equality columns first, then the sort column: an index on (customer_id, status, "
    "created_at DESC) answers WHERE customer_id = :c AND status = :s ORDER BY created_at DESC "
    "LIMIT 20 by reading 20 consecutive entries. (created_at, customer_id) or status alone "
    "makes Postgres read thousands of rows to find them."
)
EXPRESSION_INDEX = (
    "An index on email cannot answer lower(email) = lower(:email): the indexed expression must "
    "be the one in the WHERE. Index lower(email) itself (CREATE INDEX ... ON customers "
    "(lower(email))), or make the column citext and index it."
)
TRIGRAMS = (
    "A B-tree sorts by the start of the string, so it cannot find '%x%'. Substring search "
    "needs pg_trgm: CREATE EXTENSION pg_trgm, then CREATE INDEX ... ON products USING gin "
    "(name gin_trgm_ops). It answers ILIKE '%x%' with a Bitmap Index Scan."
)
WRITE_COST = (
    "Each index slows every INSERT and UPDATE. Keep at most 4 besides the primary key on "
    "orders, and drop any index whose columns are a leading prefix of another's: (customer_id) "
    "is redundant next to (customer_id, status, created_at)."
)
CONCURRENTLY = (
    "Plain CREATE INDEX blocks writes to the table while it builds. Use CREATE INDEX "
    "CONCURRENTLY, which cannot run in a transaction: in alembic, op.create_index(..., "
    "postgresql_concurrently=True) inside `with op.get_context().autocommit_block():`."
)
SAME_ANSWERS = (
    "An index must never change an answer. Orders: WHERE customer_id = :c [AND status = :s] "
    "ORDER BY created_at DESC, id DESC LIMIT :n. Email: lower(email) = lower(:email), 404 when "
    "none. Search: name ILIKE '%' || :q || '%' (any case), ORDER BY id LIMIT :n."
)

# --- the data -----------------------------------------------------------------------------

CUSTOMERS, ORDERS, PRODUCTS = 50_000, 500_000, 50_000
#: Customers who hold 40% of all orders (~5,000 each): a shop's busiest accounts. The others
#: have ~6 orders each. Both kinds are asked for: a wrong index fails one or the other.
HEAVY_CUSTOMERS, HEAVY_SHARE = 40, 40
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
#: How often each status comes, in eighths: shipped is a quarter of all orders.
STATUS_MIX = ("pending", "paid", "shipped", "shipped", "delivered", "delivered", "delivered",
              "cancelled")  # fmt: skip
FIRST_NAMES = ["ada", "alan", "grace", "edsger", "barbara", "ken", "dennis", "linus", "margaret",
               "donald", "frances", "john", "radia", "tony", "leslie", "niklaus"]  # fmt: skip
LAST_NAMES = ["lovelace", "turing", "hopper", "dijkstra", "liskov", "thompson", "ritchie",
              "torvalds", "hamilton", "knuth", "allen", "backus", "perlman", "hoare", "lamport",
              "wirth"]  # fmt: skip
DOMAINS = ["Example.com", "MAIL.test", "shop.EXAMPLE", "Post.Test", "example.ORG"]
ADJECTIVES = ["sturdy", "shiny", "compact", "vintage", "electric", "wooden", "foldable", "smart",
              "quiet", "rugged"]  # fmt: skip
NOUNS = ["kettle", "lamp", "chair", "blender", "backpack", "speaker", "drill", "mirror",
         "toaster", "keyboard", "heater", "tripod"]  # fmt: skip

#: The exercise's first revision (the starter's migration): only primary keys exist there.
BASE_REVISION = "0001_orders_products"
#: What the one-off container prints between the downgrade and the upgrade.
DOWNGRADED = "bb-grader: downgraded"
TABLES = ("customers", "orders", "products")

# --- thresholds (measured values beside each; load average of the machine in brackets) -------

#: Check 2: GET /orders?customer_id=X&status=shipped&limit=20, REQUESTS at CONCURRENCY.
ORDERS_REQUESTS, CONCURRENCY = 300, 10
#: Buffers Postgres touches per request (pg_stat_statements), half busy and half quiet
#: customers. Reference (customer_id, status, created_at DESC, id DESC): 13.0-13.6 in 10
#: grades [load 19-35]. EXPLAIN (ANALYZE, BUFFERS) on the same data: the starter's Seq Scan 4,512;
#: (created_at, customer_id) 86 for a busy customer and 4,512 (a Seq Scan) for a quiet one;
#: status alone 4,562; customer_id alone 3,013 for a busy customer.
ORDERS_BUFFERS = 100
#: The spec's p95, and how far above the p95 of GET /health (one sent after every second
#: request, in the same stream) a busy machine may push it: the larger of the two is the
#: threshold. Reference: p95 1,855-3,606 ms against /health's 787-1,527 ms, a ratio of
#: 1.8-2.6 in 6 grades [load 19-27]; the absolute 40 ms holds only on a quiet machine.
ORDERS_P95_MS, P95_HEALTH_RATIO = 40.0, 6.0
#: Check 4: GET /products/search?q=<5 rare characters>, SEARCH_REQUESTS at CONCURRENCY.
SEARCH_REQUESTS = 100
#: Reference (GIN gin_trgm_ops): 8.6-11.4 buffers per search in 9 grades [load 19-35]; a Seq
#: Scan of products (the starter, a B-tree on name): 417. Its p95 against /health's: a ratio
#: of 1.9-2.1 in 4 grades (1,687-2,492 ms against 821-1,206 ms) [load 19-29].
SEARCH_BUFFERS = 100
SEARCH_P95_MS = 60.0
#: Check 5: indexes besides the primary key allowed on orders.
MAX_ORDER_INDEXES = 4
#: Check 6: a write that waits on a lock this long (ms) has been blocked by the build. Postgres
#: logs every wait of the grader's session that lasts deadlock_timeout (log_lock_waits), so the
#: evidence is the lock manager's, not a clock on a busy machine. Reference (CONCURRENTLY): no
#: logged wait in 6 grades, while its longest insert took 264-515 ms by the clock [load 13-30];
#: plain CREATE INDEX, 2 grades: waits of 502-509, 9,012-9,541 and 25,812-26,330 ms, the
#: longest insert 26.5 s [load 19].
BLOCKED_MS = 500
INSERT_EVERY = 0.05
#: Check 7: random parameter sets compared with the database's own answer.
TRUTH_SETS = 20


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


# --- seeding, once per grade ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Shop:
    """What the grader seeded, and the values it asks about."""

    heavy: list[int]
    products_codes: dict[int, str]

    def customer(self, rng: random.Random, *, heavy: bool) -> int:
        if heavy:
            return rng.choice(self.heavy)
        while True:
            customer = rng.randint(1, CUSTOMERS)
            if customer not in self.heavy:
                return customer


@pytest.fixture(scope="session")
def pg(stack: Any) -> Iterator[Postgres]:
    with Postgres.of(stack) as instrument:
        yield instrument


@pytest.fixture(scope="session")
def seeded(pg: Postgres, stack: Any) -> Shop | Failure:
    """Seed the three tables (or the Failure that stopped it, which every check reports)."""
    rng = random.Random(f"{stack.seed}:shop")
    try:
        return seed(pg, rng)
    except psycopg.Error as exc:
        return Failure(
            f"The grader could not seed customers, orders and products: "
            f"{str(exc).strip()}",
            hint="The tables are fixed: keep them as the starter's migration makes them, and "
            "give any column you add a default.",
        )


@pytest.fixture
def shop(seeded: Shop | Failure) -> Shop:
    if isinstance(seeded, Failure):
        raise seeded
    return seeded


def seed(pg: Postgres, rng: random.Random) -> Shop:
    salt = rng.randint(1, 1_000_000)
    heavy = rng.sample(range(1, CUSTOMERS + 1), HEAVY_CUSTOMERS)
    firsts, lasts, adjectives, nouns = (rng.sample(words, len(words)) for words in
                                        (FIRST_NAMES, LAST_NAMES, ADJECTIVES, NOUNS))
    statuses = rng.sample(STATUS_MIX, len(STATUS_MIX))
    newest = f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 12:00:00+00"
    conn = pg.conn
    # A transaction the app left open would block TRUNCATE forever; give up after a while.
    conn.execute("SET lock_timeout = '30s'")
    # Seeding is the grader's own: skip the foreign-key trigger of each of 500,000 rows.
    conn.execute("SET session_replication_role = replica")
    try:
        conn.execute("TRUNCATE orders, products, customers RESTART IDENTITY")
        conn.execute(
            """
            INSERT INTO customers (id, email, name)
            SELECT i, initcap(f) || '.' || initcap(l) || i || '@' || d,
                   initcap(f) || ' ' || initcap(l)
            FROM generate_series(1, %(n)s) AS i,
            LATERAL (
              SELECT (%(firsts)s::text[])[1 + abs(hashint4(i + %(salt)s)) %% %(nf)s] AS f,
                     (%(lasts)s::text[])[1 + abs(hashint4(3 * i + %(salt)s)) %% %(nl)s] AS l,
                     (%(domains)s::text[])[1 + abs(hashint4(5 * i + %(salt)s)) %% %(nd)s] AS d
            ) AS words
            """,
            {"n": CUSTOMERS, "salt": salt, "firsts": firsts, "lasts": lasts, "domains": DOMAINS,
             "nf": len(firsts), "nl": len(lasts), "nd": len(DOMAINS)},
        )
        conn.execute(
            """
            INSERT INTO orders (customer_id, status, created_at, total_cents)
            SELECT CASE WHEN abs(hashint4(i + %(salt)s)) %% 100 < %(share)s
                        THEN (%(heavy)s::bigint[])[1 + abs(hashint4(7 * i + %(salt)s)) %% %(nh)s]
                        ELSE 1 + abs(hashint4(3 * i + %(salt)s)) %% %(customers)s END,
                   (%(statuses)s::text[])[1 + abs(hashint4(11 * i + %(salt)s)) %% %(ns)s],
                   %(newest)s::timestamptz - i * interval '37 s'
                       - (abs(hashint4(13 * i + %(salt)s)) %% 37000) * interval '1 ms',
                   100 + abs(hashint4(17 * i + %(salt)s)) %% 100000
            FROM generate_series(1, %(n)s) AS i
            """,
            {"n": ORDERS, "salt": salt, "share": HEAVY_SHARE, "heavy": heavy, "nh": len(heavy),
             "customers": CUSTOMERS, "statuses": statuses, "ns": len(statuses),
             "newest": newest},
        )
        conn.execute(
            """
            INSERT INTO products (id, name, price_cents)
            SELECT i, initcap(a) || ' ' || initcap(n) || ' '
                      || upper(substr(md5(i::text || '-' || %(salt)s), 1, 8)),
                   100 + abs(hashint4(19 * i + %(salt)s)) %% 50000
            FROM generate_series(1, %(n)s) AS i,
            LATERAL (
              SELECT (%(adjectives)s::text[])[1 + abs(hashint4(i + %(salt)s)) %% %(na)s] AS a,
                     (%(nouns)s::text[])[1 + abs(hashint4(3 * i + %(salt)s)) %% %(nn)s] AS n
            ) AS words
            """,
            {"n": PRODUCTS, "salt": salt, "adjectives": adjectives, "nouns": nouns,
             "na": len(adjectives), "nn": len(nouns)},
        )
        for table in TABLES:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"(SELECT max(id) FROM {table}))")
            # As autovacuum would soon leave them: fresh statistics (the planner sees the rows)
            # and no GIN pending list (rows a GIN index has not sorted in yet make the planner
            # price it far above a Seq Scan).
            conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("RESET lock_timeout")
    sample = rng.sample(range(1, PRODUCTS + 1), 400)
    codes = {
        int(row["id"]): str(row["code"])
        for row in pg.rows("SELECT id, split_part(name, ' ', 3) AS code FROM products "
                           "WHERE id = ANY(%s)", (sample,))
    }  # fmt: skip
    return Shop(heavy=heavy, products_codes=codes)


# --- parameters -----------------------------------------------------------------------------


def recased(text: str, rng: random.Random) -> str:
    """``text`` with the case of its letters shuffled, never unchanged when it has letters."""
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    while True:
        chars = [ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text]
        if not letters or "".join(chars) != text:
            return "".join(chars)


def rare_query(shop: Shop, rng: random.Random) -> tuple[int, str]:
    """(a product, 5 characters of its code in random case): a substring a handful of the
    50,000 names hold, so that the index, not the order of the ids, is the fast way."""
    product = rng.choice(sorted(shop.products_codes))
    code = shop.products_codes[product]
    start = rng.randint(0, len(code) - 5)
    return product, recased(code[start:start + 5], rng)


def orders_path(customer: int, status: str | None = "shipped", limit: int | None = 20) -> str:
    path = f"/orders?customer_id={customer}"
    if status is not None:
        path += f"&status={status}"
    if limit is not None:
        path += f"&limit={limit}"
    return path


def email_of(pg: Postgres, customer: int) -> str:
    return str(pg.scalar("SELECT email FROM customers WHERE id = %s", (customer,)))


def get(http: httpx.Client, path: str) -> httpx.Response:
    for attempt in (1, 2):
        try:
            return http.get(path)
        except httpx.RemoteProtocolError:
            # uvicorn closes a kept-alive connection after an unhandled exception (a 500), and
            # the next request on it fails. Once more, on a new connection, is the real answer.
            if attempt == 2:
                raise Failure(f"GET {path} got no answer: the server closed the connection "
                              f"twice.") from None
        except httpx.TransportError as exc:
            raise Failure(f"GET {path} got no answer: {type(exc).__name__} {exc}".rstrip()
                          ) from None
    raise AssertionError("unreachable")


def expect_ok(response: httpx.Response, *, hint: str | None = None) -> Any:
    expect(
        response.status_code == 200,
        f"GET {response.request.url.path}?{response.request.url.query.decode()} should answer "
        f"200, not {response.status_code}.",
        expected=200, actual=describe(response), hint=hint,
    )
    return json_body(response)


# --- plans and indexes --------------------------------------------------------------------


def learner_indexes(pg: Postgres, table: str) -> dict[str, Index]:
    """The indexes of ``table`` that the learner's migrations made (all but the primary key,
    which is all the exercise's first revision has)."""
    return {index.name: index for index in pg.indexes(table) if not index.primary}


def shown_plan(plan: Plan) -> str:
    nodes = []
    for node in plan.nodes():
        text = str(node.get("Node Type"))
        if "Index Name" in node:
            text += f" using {node['Index Name']}"
        if "Relation Name" in node:
            text += f" on {node['Relation Name']}"
        nodes.append(text)
    query = " ".join(plan.query.split())
    return f"{query[:160]} → {' → '.join(nodes)}"


def plans_on(plans: Sequence[Plan], table: str) -> list[Plan]:
    """Plans that read ``table`` (a Bitmap Index Scan names only its index, so a plan is
    counted by its scans of the table itself)."""
    return [plan for plan in plans if plan.scans(table)]


def indexes_used(plan: Plan, table: str, known: dict[str, Index]) -> list[Index]:
    return [known[name] for name in plan.index_names() if name in known and
            known[name].table == table]


# --- latency --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Latency:
    p95_ms: float
    health_p95_ms: float
    failures: list[str]

    def allowed_ms(self, spec_ms: float) -> float:
        return max(spec_ms, P95_HEALTH_RATIO * self.health_p95_ms)


def measured(app_url: str, paths: Sequence[str]) -> Latency:
    """p95 of ``paths`` sent CONCURRENCY at a time, with a GET /health after every second one
    in the same stream: the two series share the machine's load from moment to moment, so
    /health's p95 says how slow this machine is right now for a request that does nothing."""
    requests: list[tuple[str, str, Any]] = []
    for number, path in enumerate(paths):
        requests.append(("GET", path, None))
        if number % 2:
            requests.append(("GET", "/health", None))
    outcomes = burst(app_url, requests, concurrency=CONCURRENCY, timeout=30)
    asked = [o for o, r in zip(outcomes, requests, strict=True) if r[1] != "/health"]
    health = [o for o, r in zip(outcomes, requests, strict=True) if r[1] == "/health"]
    failures = [
        f"GET {path} → {outcome.error or outcome.status}"
        for path, outcome in zip(paths, asked, strict=True)
        if outcome.status != 200
    ]
    return Latency(
        p95_ms=1000 * percentile([o.finished - o.started for o in asked], 95),
        health_p95_ms=1000 * percentile([o.finished - o.started for o in health], 95),
        failures=failures,
    )


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text(encoding="ascii").split()[0]
    except OSError:
        return "?"


# --- the checks ---------------------------------------------------------------------------


@hint(READ_PLANS)
@recorded
def test_plans_use_indexes(pg: Postgres, http: httpx.Client, shop: Shop,
                           rng: random.Random) -> None:
    """The three endpoints' plans read their tables through your indexes, never a Seq Scan"""
    calls: dict[str, list[str]] = {"orders": [], "customers": [], "products": []}
    for heavy in (True, True, False, False):
        calls["orders"].append(orders_path(shop.customer(rng, heavy=heavy)))
    for _ in range(3):
        email = email_of(pg, rng.randint(1, CUSTOMERS))
        calls["customers"].append(f"/customers/by-email?email={recased(email, rng)}")
        calls["products"].append(f"/products/search?q={rare_query(shop, rng)[1]}")

    with pg.capture_plans() as captured:
        for paths in calls.values():
            for path in paths:
                expect_ok(get(http, path))

    problems = []
    for table, paths in calls.items():
        known = learner_indexes(pg, table)
        plans = plans_on(captured.plans, table)
        if not plans:
            problems.append(f"{table}: no plan of a query reading {table} was logged while "
                            f"the grader called {paths[0].split('?')[0]} {len(paths)} times")
            continue
        seq = [plan for plan in plans if plan.seq_scans(table)]
        if seq:
            problems.append(f"{table}: {len(seq)} of {len(plans)} plans read the whole table "
                            f"with a Seq Scan, e.g. {shown_plan(seq[0])}")
            continue
        unindexed = [plan for plan in plans if not indexes_used(plan, table, known)]
        if unindexed:
            problems.append(
                f"{table}: {len(unindexed)} of {len(plans)} plans use no index of your "
                f"migrations (yours on {table}: {', '.join(known) or 'none'}), e.g. "
                f"{shown_plan(unindexed[0])}")
    expect(
        not problems,
        "The plans auto_explain logged for the three endpoints: " + "; ".join(problems) + ".",
        expected="every plan reads orders, customers and products through an index of your "
        "migrations, no Seq Scan",
        actual=f"{len(problems)} of 3 tables read without one",
    )


@hint(COLUMN_ORDER)
def test_orders_latency(pg: Postgres, app_url: str, http: httpx.Client, shop: Shop,
                        rng: random.Random) -> None:
    """GET /orders?customer_id=X&status=shipped: 300 requests, concurrency 10, p95 < 40 ms"""
    paths = [orders_path(shop.customer(rng, heavy=i % 2 == 0)) for i in range(ORDERS_REQUESTS)]
    rng.shuffle(paths)
    for path in paths[:3]:  # connections, caches and prepared statements settle first
        expect_ok(get(http, path))
    with pg.count_statements() as counted:
        latency = measured(app_url, paths)
    expect(
        not latency.failures,
        f"{len(latency.failures)} of {len(paths)} requests did not answer 200, e.g. "
        f"{'; '.join(latency.failures[:3])}.",
        expected="200", actual=latency.failures[0] if latency.failures else "",
    )
    on_orders = [s for s in counted.queries() if re.search(r"\borders\b", s.query, re.I)]
    buffers = sum(s.buffers for s in on_orders) / len(paths)
    db_ms = sum(s.total_ms for s in on_orders) / len(paths)
    expect(
        buffers < ORDERS_BUFFERS,
        f"Postgres touched {buffers:,.0f} buffers (8 KB pages) per request for a customer's 20 "
        f"newest shipped orders ({db_ms:.1f} ms of SQL per request, pg_stat_statements); "
        f"threshold {ORDERS_BUFFERS}. An index led by the equality columns and then the sort "
        f"column reads ~20 entries and their rows; thousands mean Postgres reads rows it then "
        f"throws away (half the requests were for customers with ~5,000 orders, half for "
        f"customers with a few).",
        expected=f"< {ORDERS_BUFFERS} buffers per request", actual=f"{buffers:,.0f}",
    )
    allowed = latency.allowed_ms(ORDERS_P95_MS)
    expect(
        latency.p95_ms < allowed,
        f"{len(paths)} requests at concurrency {CONCURRENCY}: p95 {latency.p95_ms:.1f} ms; "
        f"threshold {allowed:.1f} ms ({ORDERS_P95_MS:g} ms, or {P95_HEALTH_RATIO:g}x GET "
        f"/health's p95 of {latency.health_p95_ms:.1f} ms, one after every second request, "
        f"on this machine at load average {load_average()}). The queries themselves were cheap "
        f"({buffers:,.0f} buffers each): the time goes elsewhere in the request.",
        expected=f"p95 < {allowed:.1f} ms", actual=f"p95 {latency.p95_ms:.1f} ms",
    )


@hint(EXPRESSION_INDEX)
def test_email_lookup(pg: Postgres, http: httpx.Client, shop: Shop, rng: random.Random) -> None:
    """GET /customers/by-email finds any case of an email with an index on lower(email)"""
    customers = rng.sample(range(1, CUSTOMERS + 1), 5)
    emails = {customer: email_of(pg, customer) for customer in customers}
    with pg.capture_plans() as captured:
        for customer, email in emails.items():
            asked = recased(email, rng)
            body = expect_ok(get(http, f"/customers/by-email?email={asked}"),
                             hint=SAME_ANSWERS)
            expect(
                isinstance(body, dict) and body.get("id") == customer,
                f"GET /customers/by-email?email={asked} should find customer {customer} "
                f"({email}): emails match whatever their case.",
                expected={"id": customer, "email": email}, actual=body, hint=SAME_ANSWERS,
            )
    unknown = f"nobody.{rng.randint(10**6, 10**7)}@{rng.choice(DOMAINS)}"
    response = get(http, f"/customers/by-email?email={unknown}")
    expect(
        response.status_code == 404,
        f"GET /customers/by-email?email={unknown} (no such customer) should answer 404, not "
        f"{response.status_code}.",
        expected=404, actual=describe(response), hint=SAME_ANSWERS,
    )

    indexes = {index.name: index for index in pg.indexes("customers")}
    fitting = {name for name, index in indexes.items() if answers_any_case(index)}
    plans = plans_on(captured.plans, "customers")
    expect(plans != [], "No plan of a query reading customers was logged while the grader "
           "looked up 5 emails.", expected="5 plans", actual="none")
    wrong = [
        plan for plan in plans
        if not any(node.get("Node Type") in ("Index Scan", "Index Only Scan")
                   and node.get("Index Name") in fitting for node in plan.nodes())
    ]
    expect(
        not wrong,
        f"{len(wrong)} of {len(plans)} email lookups did not use an Index Scan on lower(email) "
        f"or on a citext email, e.g. {shown_plan(wrong[0]) if wrong else ''}. Indexes on "
        f"customers: "
        + ("; ".join(f"{index.name} ({index.method} on {', '.join(index.columns)})"
                     for index in indexes.values()) or "none") + ".",
        expected="Index Scan using an index on lower(email), or on email of type citext",
        actual=f"{len(wrong)} lookups without one",
    )


def answers_any_case(index: Index) -> bool:
    """An index a case-insensitive equality on email can use as it stands."""
    if index.method not in ("btree", "hash") or not index.columns:
        return False
    first = index.columns[0].replace(" ", "").lower()
    return (
        first in ("lower(email)", "lower((email)::text)")
        or (first == "email" and index.column_types[0] == "citext")
    )


@hint(TRIGRAMS)
def test_substring_search(pg: Postgres, app_url: str, http: httpx.Client, shop: Shop,
                          rng: random.Random) -> None:
    """GET /products/search?q= uses a trigram index; 100 requests at concurrency 10, p95 < 60 ms"""
    asked = [rare_query(shop, rng) for _ in range(4)]
    with pg.capture_plans() as captured:
        for product, q in asked:
            body = expect_ok(get(http, f"/products/search?q={q}"), hint=SAME_ANSWERS)
            ids = [item.get("id") for item in body if isinstance(item, dict)] \
                if isinstance(body, list) else []
            expect(
                product in ids,
                f"GET /products/search?q={q} should find product {product}, whose name holds "
                f"{shop.products_codes[product]} (any case); it answered ids {ids[:10]}.",
                expected=f"a list holding id {product}", actual=str(body)[:300],
                hint=SAME_ANSWERS,
            )
    trigram = {index.name for index in pg.indexes("products")
               if set(index.opclasses) & {"gin_trgm_ops", "gist_trgm_ops"}}
    plans = plans_on(captured.plans, "products")
    expect(plans != [], "No plan of a query reading products was logged while the grader "
           "searched 4 times.", expected="4 plans", actual="none")
    wrong = [
        plan for plan in plans
        if not any(node.get("Node Type") in ("Bitmap Index Scan", "Index Scan")
                   and node.get("Index Name") in trigram for node in plan.nodes())
    ]
    expect(
        not wrong,
        f"{len(wrong)} of {len(plans)} searches did not use a trigram index (gin_trgm_ops or "
        f"gist_trgm_ops), e.g. {shown_plan(wrong[0]) if wrong else ''}. Trigram indexes on "
        f"products: {', '.join(sorted(trigram)) or 'none'}.",
        expected="Bitmap Index Scan using a gin_trgm_ops index",
        actual=f"{len(wrong)} searches without one",
    )

    paths = [f"/products/search?q={rare_query(shop, rng)[1]}" for _ in range(SEARCH_REQUESTS)]
    with pg.count_statements() as counted:
        latency = measured(app_url, paths)
    expect(
        not latency.failures,
        f"{len(latency.failures)} of {len(paths)} searches did not answer 200, e.g. "
        f"{'; '.join(latency.failures[:3])}.",
        expected="200", actual=latency.failures[0] if latency.failures else "",
    )
    on_products = [s for s in counted.queries() if re.search(r"\bproducts\b", s.query, re.I)]
    buffers = sum(s.buffers for s in on_products) / len(paths)
    expect(
        buffers < SEARCH_BUFFERS,
        f"Postgres touched {buffers:,.0f} buffers per search (pg_stat_statements); threshold "
        f"{SEARCH_BUFFERS}. A trigram index reads a few posting lists and the matching rows.",
        expected=f"< {SEARCH_BUFFERS} buffers per request", actual=f"{buffers:,.0f}",
    )
    allowed = latency.allowed_ms(SEARCH_P95_MS)
    expect(
        latency.p95_ms < allowed,
        f"{len(paths)} searches at concurrency {CONCURRENCY}: p95 {latency.p95_ms:.1f} ms; "
        f"threshold {allowed:.1f} ms ({SEARCH_P95_MS:g} ms, or {P95_HEALTH_RATIO:g}x GET "
        f"/health's p95 of {latency.health_p95_ms:.1f} ms, one after every second request, "
        f"load average {load_average()}).",
        expected=f"p95 < {allowed:.1f} ms", actual=f"p95 {latency.p95_ms:.1f} ms",
    )


@hint(WRITE_COST)
def test_write_cost(pg: Postgres) -> None:
    """At most 4 indexes besides the primary key on orders, and none a prefix of another"""
    on_orders = list(learner_indexes(pg, "orders").values())
    listed = "; ".join(f"{index.name} ({', '.join(index.columns)})" for index in on_orders)
    expect(
        len(on_orders) <= MAX_ORDER_INDEXES,
        f"orders has {len(on_orders)} indexes besides its primary key ({listed}); every "
        f"INSERT and UPDATE of an order maintains each of them.",
        expected=f"at most {MAX_ORDER_INDEXES}", actual=len(on_orders),
    )
    redundant = []
    for table in TABLES:
        indexes = pg.indexes(table)
        for index in indexes:
            wider = next((other for other in indexes if index.prefix_of(other)), None)
            if wider is not None:
                redundant.append(f"{index.name} ({', '.join(index.columns)}) leads "
                                 f"{wider.name} ({', '.join(wider.columns)})")
    expect(
        not redundant,
        f"{len(redundant)} indexes are a leading prefix of another index on the same table, "
        f"which answers every query they do: {'; '.join(redundant)}.",
        expected="no redundant index", actual=f"{len(redundant)} redundant",
    )


@hint(SAME_ANSWERS)
def test_same_answers(pg: Postgres, http: httpx.Client, shop: Shop, rng: random.Random) -> None:
    """For 20 random parameter sets, every endpoint answers exactly what SQL does"""
    # Searches for part of a word (thousands of names hold it) and for part of a code (a few
    # do), half each; every query has a capital letter somewhere, and a lowercase one.
    kinds = ["orders"] * 8 + ["email"] * 6 + ["word", "code"] * 3
    rng.shuffle(kinds)
    for number, kind in enumerate(kinds[:TRUTH_SETS], start=1):
        if kind == "orders":
            customer = shop.customer(rng, heavy=rng.random() < 0.5)
            status = rng.choice([None, *STATUSES])
            limit = rng.choice([None, rng.randint(1, 100)])
            path = orders_path(customer, status, limit)
            truth = pg.rows(
                "SELECT id, customer_id, status, created_at, total_cents FROM orders "
                "WHERE customer_id = %s AND (%s::text IS NULL OR status = %s) "
                "ORDER BY created_at DESC, id DESC LIMIT %s",
                (customer, status, status, limit or 20),
            )
            body = expect_ok(get(http, path))
            expect(isinstance(body, list), f"GET {path} should answer a JSON list of orders.",
                   expected="[...]", actual=str(body)[:200])
            expect_same_rows(body, truth, what=f"Set {number}: GET {path}", ordered=True)
        elif kind == "email":
            customer = rng.randint(1, CUSTOMERS)
            email = email_of(pg, customer)
            asked = recased(email, rng)
            path = f"/customers/by-email?email={asked}"
            body = expect_ok(get(http, path))
            truth = pg.rows("SELECT id, email, name FROM customers WHERE lower(email) = "
                            "lower(%s)", (asked,))
            expect_same_rows([body] if isinstance(body, dict) else [], truth,
                             what=f"Set {number}: GET {path}", ordered=True)
        else:
            if kind == "word":
                noun = rng.choice(NOUNS)
                start = rng.randint(0, len(noun) - 4)
                q = recased(noun[start:start + rng.randint(3, 4)], rng)
            else:
                q = rare_query(shop, rng)[1]
            limit = rng.choice([None, rng.randint(1, 100)])
            path = f"/products/search?q={q}" + (f"&limit={limit}" if limit else "")
            truth = pg.rows("SELECT id, name, price_cents FROM products WHERE name ILIKE %s "
                            "ORDER BY id LIMIT %s", (f"%{q}%", limit or 50))
            body = expect_ok(get(http, path))
            expect(isinstance(body, list), f"GET {path} should answer a JSON list of products.",
                   expected="[...]", actual=str(body)[:200])
            expect_same_rows(body, truth, what=f"Set {number}: GET {path}", ordered=True)


# The build check runs last: it takes the indexes down and up again.
@hint(CONCURRENTLY)
def test_nonblocking_build(pg: Postgres, stack: Any, shop: Shop, rng: random.Random) -> None:
    """`alembic upgrade head` on 500,000 orders never blocks inserts made every 50 ms"""
    require("plans_use_indexes", "the migration must first build the indexes the endpoints use")
    before = {i.name for table in TABLES for i in learner_indexes(pg, table).values()}
    pg.reset_statements()
    writer = Writer(pg.dsn, rng.sample(range(1, CUSTOMERS + 1), 50))
    # One container for both commands: starting the app's image costs seconds, many more on a
    # busy machine. The grader writes all along, the downgrade included.
    with pg.capture_log() as log:
        writer.start()
        try:
            run = stack.run(["sh", "-c", f"alembic downgrade {BASE_REVISION} && echo {DOWNGRADED}"
                             f" && alembic upgrade head"], timeout=600)
        finally:
            writer.stop()
    output = run.output[-1500:] or "(no output)"
    expect(
        DOWNGRADED in run.output,
        f"`alembic downgrade {BASE_REVISION}` (the exercise's first revision) failed with exit "
        f"code {run.exit_code}; the grader rebuilds your indexes from there.",
        expected="exit code 0", actual=output,
    )
    expect(writer.error is None, f"The grader's inserts failed: {writer.error}",
           expected="every insert succeeds", actual=writer.error)
    expect(
        run.ok,
        f"`alembic upgrade head` from {BASE_REVISION} failed with exit code {run.exit_code}. "
        f"If it says an index already exists, your downgrade left it there: a downgrade must "
        f"drop what its upgrade created.",
        expected="exit code 0", actual=output,
    )
    creates = [s for s in pg.statements()
               if re.match(r"\s*CREATE\s+(UNIQUE\s+)?INDEX\b", s.query, re.I)]
    plain = [s for s in creates if not re.search(r"\bCONCURRENTLY\b", s.query, re.I)]
    # Postgres logs a long wait twice: "still waiting" once deadlock_timeout passed, then
    # "acquired" with its whole length. One insert, one wait; its length is the longest line.
    waits = [w for w in parse_lock_waits(log.text, pid=writer.pid) if w.ms >= BLOCKED_MS]
    blocked = len([w for w in waits if not w.acquired])
    after = {i.name for table in TABLES for i in learner_indexes(pg, table).values()}
    expect(
        creates != [] and after == before,
        f"`alembic upgrade head` from {BASE_REVISION} built {len(creates)} indexes; the "
        f"indexes after it ({', '.join(sorted(after)) or 'none'}) should be the ones before "
        f"({', '.join(sorted(before))}).",
        expected=sorted(before), actual=sorted(after),
    )
    longest = max(writer.durations, default=0.0) * 1000
    measured_text = (f"{len(writer.durations)} inserts, one every {INSERT_EVERY * 1000:.0f} ms "
                     f"during the upgrade; the longest took {longest:.0f} ms")
    expect(
        not plain,
        f"The upgrade ran {len(plain)} CREATE INDEX without CONCURRENTLY, which holds a lock "
        f"that blocks every INSERT, UPDATE and DELETE on the table until the build commits: "
        f"{'; '.join(' '.join(s.query.split())[:160] for s in plain[:3])}. {measured_text}"
        + (f"; Postgres logged {blocked} of them waiting on a lock, the longest for "
           f"{max(w.ms for w in waits):.0f} ms." if waits else "."),
        expected="CREATE INDEX CONCURRENTLY", actual=f"{len(plain)} plain CREATE INDEX",
    )
    expect(
        not waits,
        f"{blocked} of the grader's inserts waited on a lock for {BLOCKED_MS} ms or more "
        f"(longest {max((w.ms for w in waits), default=0):.0f} ms, on "
        f"{waits[0].target if waits else ''}) while `alembic upgrade head` ran. "
        f"{measured_text}.",
        expected=f"no lock wait of {BLOCKED_MS} ms or more",
        actual=f"{blocked} inserts blocked",
    )


class Writer:
    """Inserts an order and a product every INSERT_EVERY seconds on its own connection, whose
    lock waits of BLOCKED_MS or more Postgres logs (log_lock_waits at that deadlock_timeout)."""

    def __init__(self, dsn: str, customers: list[int]) -> None:
        self.dsn = dsn
        self.customers = customers
        self.durations: list[float] = []
        self.error: str | None = None
        self.pid = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, application_name="bb-grader",
                                 connect_timeout=10) as conn:
                conn.execute("SET log_lock_waits = on")
                conn.execute(f"SET deadlock_timeout = '{BLOCKED_MS}ms'")
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                self.pid = int(row[0]) if row else 0
                self._ready.set()
                tick = 0
                while not self._stop.is_set():
                    began = time.perf_counter()
                    conn.execute(
                        "INSERT INTO orders (customer_id, status, created_at, total_cents) "
                        "VALUES (%s, 'pending', now(), %s)",
                        (self.customers[tick % len(self.customers)], 100 + tick),
                    )
                    conn.execute(
                        "INSERT INTO products (name, price_cents) VALUES (%s, %s)",
                        (f"Grader Widget {''.join(random.choices(string.ascii_uppercase, k=8))}",
                         100 + tick),
                    )
                    self.durations.append(time.perf_counter() - began)
                    tick += 1
                    self._stop.wait(max(0.0, INSERT_EVERY - (time.perf_counter() - began)))
        except psycopg.Error as exc:
            self.error = str(exc).strip()
        finally:
            self._ready.set()
