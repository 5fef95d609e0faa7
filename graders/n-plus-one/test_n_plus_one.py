"""Checks for the n-plus-one exercise: query budgets for nested JSON.

Every check seeds its own library straight into Postgres (authors, books and reviews are fixed
by the exercise): random ids, random numbers of books per author (some authors have none) and
of reviews per book (some books have none), random ratings. The ground truth is computed by
Postgres; statement budgets are the Σcalls delta of pg_stat_statements around one request,
counted for the app's own user only (the grader queries as a role of its own), without
BEGIN/COMMIT, the connection pool's liveness pings (SELECT 1) and a driver's connect-time
catalog probes: what the request itself asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import string
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from bb.grader import Failure, Postgres, describe, expect, hint, json_body, open_loop

N_PLUS_ONE = (
    "That's N+1: a lazy relationship touched in a loop runs one statement per author (and one "
    "per book). Load the books of the whole page at once (selectinload(Author.books)), and let "
    "SQL aggregate the ratings (avg(rating) in the books' query) instead of loading reviews."
)
GROUND_TRUTH = (
    "Return the first `limit` authors by id, each with all of their books: an author without "
    "books has \"books\": [] (outer joins or selectinload, never an inner join). "
    "average_rating is avg(rating) as Postgres computes it, unrounded (no integer division), "
    "null for a book without reviews."
)
STATS_IN_SQL = (
    "Stats are COUNT and AVG in one statement: authors LEFT JOIN books LEFT JOIN reviews "
    "WHERE authors.id = :id GROUP BY authors.id, with count(DISTINCT books.id). Loading the "
    "books and reviews to count them in Python sends every row over the wire. The mean of "
    "all the ratings is not the mean of the books' means."
)
FAST_PAGE = (
    "A page of 100 authors should be a few statements that return the authors and their "
    "books, with each book's average computed by Postgres: not every review of every book "
    "shipped to Python to be averaged there."
)

#: Statements one GET /authors?limit=50 may run (spec: ≤ 3). Counts are exact, whatever the
#: machine's load: reference 2 (authors; books of the page with their averages) in every one
#: of 8 grades at load averages 8.8 to 30; starter (1 + N + N×M) 145 to 210; books joined but
#: reviews lazy 51. A count threshold has no noise to leave headroom for: 2 of 3 is exact.
PAGE_BUDGET = 3
BUDGET_LIMIT = 50
#: Statements one GET /authors/{id}/stats may run (spec: ≤ 2): reference 1 (every grade);
#: starter 12 to 15 (one per book, plus the author and the books).
STATS_BUDGET = 2
#: Rows those statements may return for an author with 76-128 reviews: loading the rows to
#: count them returns one per review. Reference 1 row (20x headroom); starter 115 to 139; one
#: joined statement that loads every book and review 90 to 141.
STATS_ROWS = 20
#: The load of check 5 (spec: 100 requests of limit=100 at concurrency 5, p95 < 80 ms), sent
#: open-loop: LOAD_REQUESTS requests of limit=100, and after every second one a request of
#: limit=1 (the probe), due at LOAD_RATE per second in all, at most LOAD_IN_FLIGHT on the wire.
LOAD_LIMIT, LOAD_REQUESTS, LOAD_RATE, LOAD_IN_FLIGHT = 100, 100, 10.0, 5
#: The spec's 80 ms is out of reach for a correct page of 100 authors and ~350 books on a
#: 2-core machine with the app capped at one CPU: the reference measured p95 120-125 ms graded
#: alone at load average 2-3 (limit=1: 35-51 ms), and 134-153 ms while `bb dev check` grades
#: the N+1 starter beside it (limit=1: 49-84 ms); it failed 80 ms in a course check on a
#: near-idle machine. 400 ms keeps over 2.5x headroom; an N+1 page fails on its counts first.
P95_LIMIT_MS = 400.0
#: On a busy machine the app's 1 CPU is shared with other grades, and every request's latency
#: grows with it: then the page may take up to P95_RATIO times the p95 of limit=1, measured
#: in the same run (the same app, the same queue, the same moment). Reference, p95 of the page
#: / of limit=1: 940 / 822 ms at load average 8.7; 6,980 / 6,806 at 20; 21,404 / 21,305 at 26;
#: 22,003 / 21,603 at 27.6; 19,703 / 19,680 at 19.7: a ratio of 1.00 to 1.14 (3.5x
#: headroom). The absolute 80 ms was never met on the shared calibration machine (load never
#: under 8 meanwhile): the load-independent part of this check is the statement and row count
#: of one page, judged first.
P95_RATIO = 4.0
#: Rows one page's statements may return, as a multiple of the authors and books on the page
#: (what a page is made of). Reference: exactly 1.0x, e.g. 465 rows for 100 authors and 365
#: books (3x headroom); every review loaded to be averaged in Python (1-30 reviews a book, 15%
#: of books without): 11.6x, 4,899 rows for 100 authors and 321 books.
ROWS_PER_PAGE_ROW = 3.0

#: Seconds one request may take: an N+1 page of 100 authors runs ~400 statements, and has taken
#: over 10 s on a shared machine at load average 25. It must fail on its counts, not time out.
REQUEST_TIMEOUT = 60.0

#: Average differences smaller than this are rounding in the JSON encoder, not a mistake.
TOLERANCE = 1e-6


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


@pytest.fixture(scope="module")
def pg(stack: Any) -> Iterator[Postgres]:
    """The grader's own connection: its queries are never counted as the app's."""
    with Postgres.of(stack) as instrument:
        yield instrument


# --- seeding, straight in Postgres --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Shape:
    """How a seeded library looks: counts are drawn per author and per book."""

    authors: int
    books: tuple[int, int]
    reviews: tuple[int, int]
    #: Share of authors without any book, and of books without any review.
    bookless: float = 0.15
    unreviewed: float = 0.15


WORDS = ["amber", "birch", "cinder", "dusk", "ember", "fable", "gale", "harbor", "iris",
         "juniper", "kestrel", "lumen", "marrow", "nettle", "onyx", "pylon", "quill", "rowan"]


def seed(pg: Postgres, rng: random.Random, shape: Shape) -> dict[int, list[int]]:
    """Empty the library and COPY a random one in; returns each author's book ids.

    Ids are random (neither insertion nor heap order is id order) and rows go in shuffled.
    """
    author_ids = rng.sample(range(1, 50 * shape.authors), shape.authors)
    books: list[tuple[int, int, str]] = []
    book_ids = iter(rng.sample(range(1, 400 * shape.authors), 20 * shape.authors))
    by_author: dict[int, list[int]] = {}
    for author in author_ids:
        count = 0 if rng.random() < shape.bookless else rng.randint(*shape.books)
        by_author[author] = [next(book_ids) for _ in range(count)]
        books += [(book, author, title(rng)) for book in by_author[author]]
    reviews: list[tuple[int, int, int]] = []
    review_id = rng.randint(1, 10_000)
    for book, _, _ in books:
        count = 0 if rng.random() < shape.unreviewed else rng.randint(*shape.reviews)
        for _ in range(count):
            review_id += rng.randint(1, 3)
            reviews.append((review_id, book, rng.randint(1, 5)))
    authors = [(author, f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {n}")
               for n, author in enumerate(author_ids)]
    for rows in (authors, books, reviews):
        rng.shuffle(rows)
    try:
        # A transaction the app leaves open would block TRUNCATE forever; give up after a while.
        pg.conn.execute("SET lock_timeout = '15s'")
        pg.conn.execute("TRUNCATE reviews, books, authors")
        pg.copy_rows("authors", ["id", "name"], authors)
        pg.copy_rows("books", ["id", "author_id", "title"], books)
        pg.copy_rows("reviews", ["id", "book_id", "rating"], reviews)
        for table in ("authors", "books", "reviews"):
            # Rows the app might insert take ids from the sequences: start them past ours.
            pg.conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}))")
            pg.analyze(table)
    except psycopg.Error as exc:
        raise Failure(
            f"The grader could not seed the library: {exc}".rstrip(),
            hint="The schema is fixed: keep authors(id, name), books(id, author_id, title) and "
            "reviews(id, book_id, rating) as the starter's migration makes them, and give any "
            "column you add a default.",
        ) from None
    return by_author


def title(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(2, 4))).capitalize() + (
        f" {rng.choice(string.ascii_uppercase)}" if rng.random() < 0.3 else "")


# --- ground truth, computed by Postgres ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TruthAuthor:
    id: int
    name: str
    #: book id → (title, average rating or None)
    books: dict[int, tuple[str, float | None]]


def truth_page(pg: Postgres, limit: int) -> dict[int, TruthAuthor]:
    authors = pg.rows("SELECT id, name FROM authors ORDER BY id LIMIT %s", (limit,))
    books = pg.rows(
        "SELECT b.id, b.author_id, b.title, "
        "       (SELECT avg(r.rating)::float8 FROM reviews r WHERE r.book_id = b.id) AS average "
        "FROM books b WHERE b.author_id = ANY(%s)",
        ([int(a["id"]) for a in authors],),
    )
    page = {int(a["id"]): TruthAuthor(int(a["id"]), str(a["name"]), {}) for a in authors}
    for book in books:
        page[int(book["author_id"])].books[int(book["id"])] = (str(book["title"]), book["average"])
    return page


def truth_stats(pg: Postgres, author_id: int) -> dict[str, Any]:
    row = pg.rows(
        "SELECT (SELECT count(*) FROM books WHERE author_id = %(a)s) AS book_count, "
        "       count(r.id) AS review_count, avg(r.rating)::float8 AS average_rating "
        "FROM books b JOIN reviews r ON r.book_id = b.id WHERE b.author_id = %(a)s",
        {"a": author_id},
    )[0]
    return {"author_id": author_id, **row}


# --- asking the app -------------------------------------------------------------------------


def get(http: httpx.Client, path: str) -> httpx.Response:
    for attempt in (1, 2):
        try:
            return http.get(path, timeout=REQUEST_TIMEOUT)
        except httpx.RemoteProtocolError:
            # uvicorn closes a kept-alive connection after an unhandled exception (a 500), and
            # the next request on it fails. Once more, on a new connection, is the real answer.
            if attempt == 2:
                raise Failure(f"GET {path} got no answer: the server closed the connection "
                              f"twice.") from None
        except httpx.TransportError as exc:
            raise Failure(f"GET {path} got no answer: {type(exc).__name__} {exc}"
                          .rstrip()) from None
    raise AssertionError("unreachable")


def get_ok(http: httpx.Client, path: str) -> Any:
    response = get(http, path)
    expect(
        response.status_code == 200,
        f"GET {path} should answer 200, not {response.status_code}.",
        expected=200, actual=describe(response),
    )
    return json_body(response)


def counted_request(
    pg: Postgres, http: httpx.Client, path: str
) -> tuple[Any, Any]:
    """The body of ``GET path`` and what Postgres ran for it (pg_stat_statements).

    The same request goes once before the window, so the pool's connection is open and the
    driver's first-use probes are behind it; inside the window, only this request's
    statements run: the grader's own queries are a role of their own, and nothing else talks
    to the app.
    """
    get(http, path)
    with pg.count_statements() as counted:
        body = get_ok(http, path)
    return body, counted


def expect_page(body: Any, truth: dict[int, TruthAuthor], what: str) -> None:
    """``body`` holds exactly the authors and books of ``truth`` (in any order)."""
    expect(
        isinstance(body, list) and all(
            isinstance(a, dict) and isinstance(a.get("id"), int)
            and isinstance(a.get("books"), list)
            and all(isinstance(b, dict) and isinstance(b.get("id"), int) for b in a["books"])
            for a in body
        ),
        f'{what} should answer a JSON list of authors: [{{"id": <int>, "name": ..., "books": '
        f'[{{"id": <int>, "title": ..., "average_rating": <number or null>}}, ...]}}, ...].',
        expected='[{"id", "name", "books": [{"id", "title", "average_rating"}]}]',
        actual=repr(body)[:300],
    )
    problems: list[str] = []
    arrived = {int(a["id"]): a for a in body}
    if len(arrived) != len(body):
        problems.append(f"{len(body) - len(arrived)} authors came more than once")
    missing = [i for i in truth if i not in arrived]
    extra = [i for i in arrived if i not in truth]
    if missing:
        without = sum(1 for i in missing if not truth[i].books)
        problems.append(
            f"{len(missing)} of the first {len(truth)} authors by id are missing (e.g. "
            f"{missing[:3]}; {without} of them have no books)")
    if extra:
        problems.append(f"{len(extra)} authors do not belong to the first {len(truth)} by id "
                        f"(e.g. {extra[:3]})")
    for author_id, expected in truth.items():
        author = arrived.get(author_id)
        if author is None:
            continue
        if author.get("name") != expected.name:
            problems.append(f"author {author_id}: name {author.get('name')!r} instead of "
                            f"{expected.name!r}")
        books = {int(b["id"]): b for b in author["books"]}
        lost = [b for b in expected.books if b not in books]
        alien = [b for b in books if b not in expected.books]
        if lost or alien or len(books) != len(author["books"]):
            problems.append(
                f"author {author_id}: books {sorted(books)[:6]} instead of "
                f"{sorted(expected.books)[:6]}"
                + (" (and more)" if max(len(books), len(expected.books)) > 6 else ""))
            continue
        for book_id, (book_title, average) in expected.books.items():
            book = books[book_id]
            if book.get("title") != book_title:
                problems.append(f"book {book_id}: title {book.get('title')!r} instead of "
                                f"{book_title!r}")
            got = book.get("average_rating", ...)
            if not same_average(got, average):
                problems.append(f"book {book_id}: average_rating {got!r} instead of {average!r}"
                                if got is not ... else f"book {book_id}: no average_rating")
    expect(
        not problems,
        f"{what}: {len(problems)} difference{'s' if len(problems) != 1 else ''} from the "
        f"database: {'; '.join(problems[:5])}{' …' if len(problems) > 5 else ''}",
        expected=f"{len(truth)} authors, {sum(len(a.books) for a in truth.values())} books, "
        f"as in the database",
        actual=f"{len(body)} authors, {sum(len(a['books']) for a in body)} books; "
        f"{len(problems)} differences",
    )


def same_average(got: Any, truth: float | None) -> bool:
    if truth is None or got is None:
        return got is truth
    number = isinstance(got, int | float) and not isinstance(got, bool)
    return number and abs(got - truth) <= TOLERANCE


def page_size(truth: dict[int, TruthAuthor]) -> int:
    """Authors plus books on a page: the rows a page is made of."""
    return len(truth) + sum(len(a.books) for a in truth.values())


def per_request(counted: Any) -> str:
    return counted.summary(6, chatter=False)


# --- the checks -----------------------------------------------------------------------------


@hint(GROUND_TRUTH)
@recorded
def test_nested_json(pg: Postgres, http: httpx.Client, rng: random.Random) -> None:
    """GET /authors?limit= returns the first authors by id, all their books and exact averages"""
    seed(pg, rng, Shape(authors=rng.randint(120, 180), books=(1, 7), reviews=(1, 10)))
    # Never 20: a page that ignores ?limit and always holds the default must fail here.
    for limit in (rng.choice([n for n in range(5, 61) if n != 20]), None):
        path = "/authors" if limit is None else f"/authors?limit={limit}"
        truth = truth_page(pg, 20 if limit is None else limit)
        what = f"GET {path}" + (" (default limit 20)" if limit is None else "")
        expect_page(get_ok(http, path), truth, what)


@hint(N_PLUS_ONE)
@recorded
def test_query_budget(pg: Postgres, http: httpx.Client, rng: random.Random) -> None:
    """One GET /authors?limit=50 runs at most 3 SQL statements"""
    require("nested_json", "a statement count means something only for a right answer")
    seed(pg, rng, Shape(authors=rng.randint(80, 120), books=(1, 7), reviews=(1, 10)))
    path = f"/authors?limit={BUDGET_LIMIT}"
    body, counted = counted_request(pg, http, path)
    truth = truth_page(pg, BUDGET_LIMIT)
    expect_page(body, truth, f"GET {path}")
    books = page_size(truth) - len(truth)
    expect(
        counted.data_calls <= PAGE_BUDGET,
        f"One GET {path} ({len(truth)} authors, {books} books) ran {counted.data_calls} SQL "
        f"statements (pg_stat_statements, Σcalls); the budget is {PAGE_BUDGET}. Busiest: "
        f"{per_request(counted)}",
        expected=f"<= {PAGE_BUDGET} statements", actual=f"{counted.data_calls} statements",
    )


@hint(N_PLUS_ONE)
@recorded
def test_constant_queries(pg: Postgres, http: httpx.Client, rng: random.Random) -> None:
    """GET /authors?limit=10 and ?limit=100 run the same number of SQL statements"""
    require("nested_json", "a statement count means something only for a right answer")
    seed(pg, rng, Shape(authors=rng.randint(130, 170), books=(1, 7), reviews=(1, 10)))
    counts = {}
    for limit in (10, 100):
        path = f"/authors?limit={limit}"
        body, counted = counted_request(pg, http, path)
        expect_page(body, truth_page(pg, limit), f"GET {path}")
        counts[limit] = counted
    small, large = counts[10].data_calls, counts[100].data_calls
    expect(
        small == large,
        f"GET /authors?limit=10 ran {small} SQL statements and ?limit=100 ran {large} "
        f"(pg_stat_statements, Σcalls): the count grows with the page, so a page of 1,000 "
        f"would run ~{large + (large - small) * 10}. Busiest at limit=100: "
        f"{per_request(counts[100])}",
        expected=f"{small} statements at both sizes", actual=f"{small} vs {large}",
    )


@hint(STATS_IN_SQL)
@recorded
def test_stats_in_sql(pg: Postgres, http: httpx.Client, rng: random.Random) -> None:
    """GET /authors/{id}/stats is right, in at most 2 statements, without loading every row"""
    by_author = seed(pg, rng, Shape(authors=rng.randint(40, 60), books=(1, 4), reviews=(0, 6)))
    # One author with many books and many reviews: the one whose stats are counted.
    rich = rng.choice(sorted(by_author))
    books = rng.sample(range(10**9, 2 * 10**9), rng.randint(8, 10))
    pg.copy_rows("books", ["id", "author_id", "title"], [(b, rich, title(rng)) for b in books])
    base = int(pg.scalar("SELECT coalesce(max(id), 0) FROM reviews"))
    ratings = [(rng.choice(books), rng.randint(1, 5)) for _ in range(rng.randint(60, 100))]
    # Uneven reviews per book, so the mean of the books' means differs from the mean.
    ratings += [(books[0], 5)] * rng.randint(15, 25) + [(books[1], 1)] * rng.randint(1, 3)
    pg.copy_rows("reviews", ["id", "book_id", "rating"],
                 [(base + n + 1, b, r) for n, (b, r) in enumerate(ratings)])
    pg.analyze("books")
    pg.analyze("reviews")
    bookless = next((a for a, b in by_author.items() if not b and a != rich), None)
    unreviewed_book = int(pg.scalar("SELECT max(id) FROM books") or 0) + 1
    lonely = rng.choice([a for a in by_author if a not in (rich, bookless)])
    pg.copy_rows("books", ["id", "author_id", "title"], [(unreviewed_book, lonely, title(rng))])
    pg.conn.execute("DELETE FROM reviews WHERE book_id IN (SELECT id FROM books WHERE "
                    "author_id = %s)", (lonely,))

    for author_id in [a for a in (rich, lonely, bookless) if a is not None]:
        path = f"/authors/{author_id}/stats"
        body, counted = counted_request(pg, http, path)
        truth = truth_stats(pg, author_id)
        problems = []
        if not isinstance(body, dict):
            problems.append(f"the body is {repr(body)[:80]}, not an object")
        else:
            for field in ("author_id", "book_count", "review_count"):
                if body.get(field) != truth[field] or isinstance(body.get(field), bool):
                    problems.append(f"{field} {body.get(field, 'missing')!r} instead of "
                                    f"{truth[field]!r}")
            if not same_average(body.get("average_rating"), truth["average_rating"]):
                problems.append(f"average_rating {body.get('average_rating', 'missing')!r} "
                                f"instead of {truth['average_rating']!r}")
        expect(
            not problems,
            f"GET {path}: {'; '.join(problems)} (from the database).",
            expected={k: truth[k] for k in ("author_id", "book_count", "review_count",
                                            "average_rating")},
            actual=repr(body)[:300],
        )
        if author_id != rich:
            continue
        expect(
            counted.data_calls <= STATS_BUDGET,
            f"One GET {path} (an author with {truth['book_count']} books and "
            f"{truth['review_count']} reviews) ran {counted.data_calls} SQL statements "
            f"(pg_stat_statements, Σcalls); the budget is {STATS_BUDGET}. Busiest: "
            f"{per_request(counted)}",
            expected=f"<= {STATS_BUDGET} statements", actual=f"{counted.data_calls} statements",
        )
        expect(
            counted.data_rows <= STATS_ROWS,
            f"One GET {path} (an author with {truth['book_count']} books and "
            f"{truth['review_count']} reviews) fetched {counted.data_rows} rows from Postgres "
            f"(pg_stat_statements, Σrows) to answer four numbers; threshold {STATS_ROWS}. "
            f"The counting and averaging happened in Python. Statements: "
            f"{per_request(counted)}",
            expected=f"<= {STATS_ROWS} rows", actual=f"{counted.data_rows} rows",
        )

    unknown = max(by_author) + rng.randint(1000, 9999)
    response = get(http, f"/authors/{unknown}/stats")
    expect(
        response.status_code == 404,
        f"GET /authors/{unknown}/stats (no such author) should answer 404, not "
        f"{response.status_code}.",
        expected=404, actual=describe(response),
    )


@hint(FAST_PAGE)
@recorded
def test_page_latency(pg: Postgres, app_url: str, http: httpx.Client,
                      rng: random.Random) -> None:
    """100 requests of GET /authors?limit=100, open-loop: p95 < 400 ms, no reviews shipped"""
    require("nested_json", "a fast wrong answer is still wrong")
    seed(pg, rng, Shape(authors=rng.randint(130, 170), books=(1, 7), reviews=(1, 30)))
    page, probe = f"/authors?limit={LOAD_LIMIT}", "/authors?limit=1"
    truth = truth_page(pg, LOAD_LIMIT)
    # What one page costs Postgres, counted alone: the part of this check that the machine's
    # load cannot change, judged first.
    body, counted = counted_request(pg, http, page)
    expect_page(body, truth, f"GET {page}")
    statements, rows, made_of = counted.data_calls, counted.data_rows, page_size(truth)
    costs = (f"One GET {page} ({len(truth)} authors, {made_of - len(truth)} books) ran "
             f"{statements} SQL statements that returned {rows:,} rows (pg_stat_statements)")
    expect(
        statements <= PAGE_BUDGET,
        f"{costs}; the budget is {PAGE_BUDGET} statements. Busiest: {per_request(counted)}",
        expected=f"<= {PAGE_BUDGET} statements", actual=f"{statements} statements",
        hint=N_PLUS_ONE,
    )
    expect(
        rows <= ROWS_PER_PAGE_ROW * made_of,
        f"{costs}. The page is made of {made_of:,} authors and books, so at most "
        f"{ROWS_PER_PAGE_ROW * made_of:,.0f} rows ({ROWS_PER_PAGE_ROW:g} per author or book) "
        f"should cross from Postgres; the rest were reviews, to be averaged in Python. "
        f"Statements: {per_request(counted)}",
        expected=f"<= {ROWS_PER_PAGE_ROW * made_of:,.0f} rows", actual=f"{rows:,} rows",
    )

    for _ in range(3):  # connections, caches and prepared statements settle first
        get_ok(http, page)
        get_ok(http, probe)
    result = open_loop(
        app_url, lambda i: ("GET", probe if i % 3 == 2 else page, None),
        rate=LOAD_RATE, count=LOAD_REQUESTS * 3 // 2, timeout=10,
        max_in_flight=LOAD_IN_FLIGHT, body_limit=1 << 22)
    # A request still waiting when its time was up is a slow one (its latency counts, from its
    # due time); a wrong status, or a connection the app broke, is a failure.
    broken = [s for s in result.samples
              if (s.status is not None and s.status != 200)
              or s.error not in (None, "timeout", "cancelled")]
    load = (f"{LOAD_REQUESTS} requests of GET {page}, sent open-loop with GET {probe} after "
            f"every second one, {LOAD_RATE:g}/s in all, at most {LOAD_IN_FLIGHT} at once")
    expect(
        not broken,
        f"{load}: {len(broken)} did not answer 200 ({result.summary()}).",
        expected="200 to every request", actual=result.summary(),
    )
    p95 = percentile([s.latency for s in result.samples if s.path == page], 95) * 1000
    p95_probe = percentile([s.latency for s in result.samples if s.path == probe], 95) * 1000
    allowed = max(P95_LIMIT_MS, P95_RATIO * p95_probe)
    expect(
        p95 < allowed,
        f"{load}: p95 {p95:.0f} ms (limit=1: p95 {p95_probe:.0f} ms). Threshold: p95 < "
        f"{P95_LIMIT_MS:g} ms, or on a busy machine {P95_RATIO:g}x the p95 of limit=1: "
        f"{allowed:.0f} ms. ({costs}.)",
        expected=f"p95 < {allowed:.0f} ms", actual=f"p95 {p95:.0f} ms",
    )



def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by the nearest-rank method (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
