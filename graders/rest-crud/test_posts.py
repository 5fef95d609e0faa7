"""Checks for rest-crud: a blog posts API with status codes, validation, persistence and search."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import re
import string
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import psycopg
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.core.result import Ok

from bb.grader import (
    Failure,
    capped_client,
    capped_session,
    describe,
    expect,
    expect_problem,
    expect_status,
    hint,
    json_body,
)

if TYPE_CHECKING:
    from bb.grader.plugin import Stack

Post = dict[str, Any]
Operation = APIOperation[Any, Any, Any, Any]
GeneratedCase = Case[Any]

#: The fields a client sends; the server echoes them back unchanged.
FIELDS = ("title", "content", "category", "tags")
#: The fields ?term= searches. Tags are deliberately not among them.
SEARCHED = ("title", "content", "category")
#: Letters mixed into random text: they must survive the round trip to Postgres unchanged.
ACCENTED = "éüøçñå"

# Each hint is its levels, shortest first: a check that fails again on a later grade shows
# the next one (bb hint --next CHECK reveals it on request).
CREATE_HINT = (
    "Creates return 201 with a Location header; bad input is a 4xx problem+json; "
    "5xx means *your* bug.",
    "FastAPI answers 200 unless told otherwise: declare `status_code=201` on the POST route "
    "and set `response.headers[\"Location\"] = f\"/posts/{post.id}\"` from the id the "
    "INSERT returned (flush, or RETURNING, before you build the answer).",
)
MIGRATION_HINT = (
    "Schema changes belong in versioned migrations: write the posts table in alembic/versions/.",
)
PERSIST_HINT = (
    "Keep posts in Postgres, not in a Python list: the grader restarts your app and expects "
    "them back.",
    "A restart starts a new process, so module-level lists and dicts start empty again. Write "
    "each post with an INSERT through the session the route depends on, commit it, and read "
    "lists and single posts back with SELECTs: nothing about posts may live in Python "
    "between two requests.",
)
FUZZ_HINT = (
    "5xx means *your* bug: read the traceback in your app's log. Postgres text cannot hold "
    "NUL (U+0000) and BIGINT stops at 2**63-1: validate both at the edge and answer 422.",
)
TRACEBACK_HINT = (
    "Install an exception handler that logs the traceback and returns a generic problem body.",
    "`@app.exception_handler(Exception)` receives every error no route caught: call "
    "`logger.exception(...)` (the traceback goes to your log, where you read it), then return "
    "a JSONResponse of status 500, media type application/problem+json, whose title and detail "
    "say nothing of the error itself: no str(exc), no traceback.format_exc().",
)
REPLACE_HINT = (
    "PUT replaces the whole post with the body sent, validated like POST's: a field left out "
    "goes back to its default, not to its old value (that would be PATCH).",
    "Take the same pydantic model as POST, then assign every field from it: "
    "`for name, value in body.model_dump().items(): setattr(post, name, value)`. "
    "`model_dump(exclude_unset=True)` is what PATCH uses, and is exactly the mistake here: "
    "it skips the fields left out, so they keep their old values.",
)
UPDATED_AT_HINT = (
    "Set post.updated_at = func.now() yourself on every PUT: an ORM onupdate fires only when "
    "some other column changed. created_at never changes.",
    "A PUT that sends the same values as before changes no column, so SQLAlchemy issues no "
    "UPDATE at all and `onupdate=` never runs. Assign `post.updated_at = func.now()` (or "
    "datetime.now(UTC)) in the PUT route itself, after copying the fields, so every PUT "
    "writes it; never assign created_at after the INSERT.",
)
SEARCH_HINT = (
    "Search title, content and category (not tags), ignoring case: "
    "column.icontains(term, autoescape=True) in SQLAlchemy, or ILIKE '%' || :term || '%' "
    "with % and _ escaped.",
    "In a LIKE pattern % matches any run of characters and _ any one character, so a search "
    "for `50%` or `a_b` matches far too much unless they are escaped. "
    "`or_(Post.title.icontains(term, autoescape=True), Post.content.icontains(term, "
    "autoescape=True), Post.category.icontains(term, autoescape=True))` escapes them "
    "(with /) and says so in the SQL's ESCAPE clause.",
)
NUL_HINT = (
    "Postgres text cannot hold NUL (U+0000): put an AfterValidator that rejects it on every "
    "string field, on each item of tags, and on the term query parameter.",
    "Define it once: `NoNul = Annotated[str, AfterValidator(reject_nul)]`, where reject_nul "
    "raises ValueError when '\\x00' is in the value, and use NoNul for title, content, "
    "category, for the items of tags (`list[NoNul]`: a validator on the list alone never "
    "sees them) and for `term` (`Annotated[NoNul | None, Query()]`). FastAPI then answers 422 "
    "before anything reaches Postgres.",
)
ID_HINT = (
    "Ids are BIGINT: bound the path parameter with Path(ge=1, le=2**63 - 1), so an id that "
    "can't name a post is a 422 before any SQL runs.",
    "Without the bound, an id such as 2**64 reaches psycopg, which cannot send it as a "
    "bigint, and the error comes back as a 500. Declare the parameter as "
    "`post_id: Annotated[int, Path(ge=1, le=2**63 - 1)]` on GET, PUT and DELETE alike.",
)
CREATE_ALL_HINT = (
    MIGRATION_HINT[0] + " Don't create tables when the app starts (Base.metadata.create_all): "
    "bb runs your migrations before your app.",
    "Remove every `Base.metadata.create_all(...)` (often in a startup or lifespan hook): with "
    "it, the table exists whether or not your migration is right, and the grader sees a "
    "schema no migration made. Generate the migration (`alembic revision --autogenerate`), "
    "read it, and let `alembic upgrade head` be the only thing that creates tables.",
)
TIMESTAMP_HINT = (
    "Store timestamptz (DateTime(timezone=True)) and return aware datetimes: a timestamp "
    "without an offset is ambiguous.",
)

#: What a post's optional fields hold when a POST or PUT leaves them out.
DEFAULTS: Post = {"content": "", "category": "", "tags": []}
#: Pause between writes whose timestamps must differ (Postgres keeps microseconds).
TICK_SECONDS = 0.01  # Postgres timestamps step by 1 µs: 10,000x what the checks need

#: Generated requests per operation and mode (valid, invalid): about 200 for this API's six
#: operations, as some have fewer distinct cases (GET /health has exactly one).
FUZZ_EXAMPLES = 20
#: uvicorn's access log: one line per request, noise next to a traceback.
ACCESS_LOG = re.compile(r'^INFO:\s+\S+ - "')
#: Generation stops after this many seconds, whatever is left (the check judges what ran).
#: The reference's fuzzing takes 8.8 s on a quiet machine (6.8x headroom), 16.5 s under a load
#: average of 8; whole grade 21 s quiet, 50 s loaded.
FUZZ_BUDGET_SECONDS = 60.0


# --- random data ------------------------------------------------------------------------------


def random_word(rng: random.Random) -> str:
    letters = rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))
    if rng.random() < 0.15:
        letters[rng.randrange(len(letters))] = rng.choice(ACCENTED)
    return "".join(letters)


def random_words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(random_word(rng) for _ in range(rng.randint(low, high)))


def random_post(rng: random.Random) -> Post:
    return {
        "title": random_words(rng, 2, 6).capitalize(),
        "content": random_words(rng, 8, 40),
        "category": random_word(rng).capitalize(),
        "tags": [random_word(rng) for _ in range(rng.randint(0, 4))],
    }


def mixed_case(rng: random.Random, text: str) -> str:
    """``text`` with each letter's case chosen at random, holding both cases (like "TeCh")."""
    while True:
        mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in text)
        if not mixed.islower() and not mixed.isupper():
            return mixed


def embed(rng: random.Random, post: Post, field: str, term: str) -> None:
    """Hide ``term``, in random case, inside a word of ``post[field]``."""
    affixes = [random_word(rng)[: rng.randint(0, 3)] for _ in range(2)]
    hidden = affixes[0] + mixed_case(rng, term) + affixes[1]
    if field == "tags":
        post["tags"] = [*post["tags"], hidden]
        return
    words = post[field].split(" ")
    words[rng.randrange(len(words))] = hidden
    post[field] = " ".join(words)


def matches(post: Post, term: str) -> bool:
    return any(term.lower() in str(post.get(field, "")).lower() for field in SEARCHED)


def id_list(ids: Iterable[int], limit: int = 10) -> str:
    ordered = sorted(ids)
    more = ", …" if len(ordered) > limit else ""
    return f"[{', '.join(map(str, ordered[:limit]))}{more}]"


def unknown_id(rng: random.Random) -> int:
    """An id no post has: far above what a grade creates, but inside a 32-bit integer."""
    return rng.randint(10**9, 2**31 - 1)


# --- reading answers --------------------------------------------------------------------------


@contextlib.contextmanager
def context(what: str) -> Iterator[None]:
    """Prefix the message of a failure raised inside with ``what``."""
    try:
        yield
    except Failure as failure:
        raise Failure(f"{what}: {failure.message}", expected=failure.expected,
                      actual=failure.actual, hint=failure.hints) from None


def short(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def where(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}"


def timestamp(post: Post, field: str, origin: str) -> datetime:
    value = post.get(field)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    expect(
        parsed is not None and parsed.tzinfo is not None,
        f"{origin}: {field!r} should be an ISO-8601 timestamp with an offset.",
        expected="like 2026-01-01T10:00:00.123456+00:00",
        actual=repr(value) if field in post else "(missing)",
        hint=TIMESTAMP_HINT,
    )
    assert parsed is not None
    return parsed


def expect_post(response: httpx.Response, sent: Post) -> Post:
    """The post in ``response``'s body, which must echo the fields of ``sent``."""
    origin = where(response)
    body = json_body(response)
    expect(isinstance(body, dict), f"{origin} should answer with a post (a JSON object).",
           expected="a JSON object", actual=describe(response))
    expect(type(body.get("id")) is int, f"{origin}: the post's \"id\" should be an integer.",
           expected="an integer", actual=repr(body.get("id")) if "id" in body else "(missing)")
    for field in FIELDS:
        expect(
            body.get(field) == sent[field],
            f"{origin}: the post's {field!r} should be exactly what was sent.",
            expected=short(sent[field]),
            actual=short(body[field]) if field in body else "(missing)",
        )
    for field in ("created_at", "updated_at"):
        timestamp(body, field, origin)
    return dict(body)


def expect_same(response: httpx.Response, stored: Post) -> None:
    """``response`` must be 200 with ``stored``: same id, fields and instants."""
    expect_status(response, 200)
    body = expect_post(response, stored)
    origin = where(response)
    expect(body["id"] == stored["id"], f"{origin} returned another post.",
           expected=f"id {stored['id']}", actual=f"id {body['id']}")
    for field in ("created_at", "updated_at"):
        expect(
            timestamp(body, field, origin) == timestamp(stored, field, "the stored post"),
            f"{origin}: {field!r} differs from the stored post's.",
            expected=stored[field],
            actual=body[field],
        )


def expect_post_list(response: httpx.Response) -> dict[int, Post]:
    """The posts of a 200 list answer, by id."""
    expect_status(response, 200)
    origin = where(response)
    body = json_body(response)
    expect(
        isinstance(body, list)
        and all(isinstance(item, dict) and type(item.get("id")) is int for item in body),
        f"{origin} should answer with a JSON array of posts, each with an integer \"id\".",
        expected="[{\"id\": 1, \"title\": ...}, ...]",
        actual=describe(response),
    )
    return {item["id"]: item for item in body}


def create_post(http: httpx.Client, payload: Post) -> Post:
    response = http.post("/posts", json=payload)
    expect_status(response, 201, hint=CREATE_HINT)
    return expect_post(response, payload)


def count_posts(db: psycopg.Connection[Any]) -> int:
    try:
        row = db.execute("SELECT count(*) FROM posts").fetchone()
    except psycopg.errors.UndefinedTable:
        raise Failure(
            "The database has no posts table.",
            expected="a table posts(id, title, content, category, tags, created_at, updated_at)",
            actual="no table called posts",
            hint=MIGRATION_HINT,
        ) from None
    assert row is not None
    return int(row[0])


def rich_post(rng: random.Random) -> Post:
    """A random post whose optional fields all differ from their defaults."""
    post = random_post(rng)
    post["tags"] = post["tags"] or [random_word(rng)]
    return post


def expect_search(http: httpx.Client, created: dict[int, Post], term: str, query: str) -> None:
    """``GET /posts?term=query`` returns exactly the posts holding ``term`` in a searched field.

    ``created`` holds the posts this check made; posts made by other checks may match too, and
    count only if they really hold the term.
    """
    found = expect_post_list(http.get("/posts", params={"term": query}))
    expected = {post_id for post_id, post in created.items() if matches(post, term)}
    wrong = {post_id for post_id, post in found.items()
             if (post_id in created and post_id not in expected)
             or (post_id not in created and not matches(post, term))}
    missing = expected - set(found)
    problems = []
    if missing:
        post_id = min(missing)
        field = next(f for f in SEARCHED if term in created[post_id][f].lower())
        word = next((w for w in created[post_id][field].split() if term in w.lower()), term)
        problems.append(f"missing {id_list(missing)} (post {post_id}'s {field} holds {word!r})")
    if wrong:
        post_id = min(wrong)
        tags = str(created.get(post_id, found[post_id]).get("tags")).lower()
        why = "only in its tags" if term in tags else "nowhere"
        problems.append(f"unexpected {id_list(wrong)} (post {post_id} holds {query!r} {why})")
    expect(
        not problems,
        f"GET /posts?term={query} should return exactly the {len(expected)} posts, of "
        f"{len(created)} just created, whose title, content or category contains "
        f"{query!r} in any case.",
        expected=f"ids {id_list(expected)}",
        actual="; ".join(problems),
    )


def table_exists(db: psycopg.Connection[Any], name: str) -> bool:
    row = db.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()
    return bool(row and row[0])


@contextlib.contextmanager
def failing_insert(db: psycopg.Connection[Any], title: str, message: str) -> Iterator[None]:
    """Make the database refuse to insert a post titled ``title``, raising ``message``.

    Both are plain letters and spaces (made by the grader), so they are safe inside the SQL.
    """
    db.execute(
        "CREATE OR REPLACE FUNCTION bb_grader_fail_insert() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN IF NEW.title = '{title}' THEN RAISE EXCEPTION '{message}'; END IF; "
        "RETURN NEW; END $$"
    )
    try:
        db.execute("CREATE TRIGGER bb_grader_fail_insert BEFORE INSERT ON posts "
                   "FOR EACH ROW EXECUTE FUNCTION bb_grader_fail_insert()")
        yield
    finally:
        db.execute("DROP TRIGGER IF EXISTS bb_grader_fail_insert ON posts")
        db.execute("DROP FUNCTION IF EXISTS bb_grader_fail_insert()")


# --- checks -----------------------------------------------------------------------------------


@hint(CREATE_HINT)
def test_create_post(http: httpx.Client, rng: random.Random) -> None:
    """POST /posts answers 201 with the new post and a Location header"""
    payload = random_post(rng)
    response = http.post("/posts", json=payload)
    expect_status(response, 201)
    post = expect_post(response, payload)
    location = response.headers.get("location")
    expected = f"/posts/{post['id']}"
    expect(
        location is not None and urlsplit(location).path == expected,
        "POST /posts should name the new post in its Location header.",
        expected=f"Location: {expected}",
        actual=f"Location: {location}" if location is not None else "(no Location header)",
    )


@hint(CREATE_HINT)
def test_invalid_post_rejected(http: httpx.Client, db: psycopg.Connection[Any],
                               rng: random.Random) -> None:
    """Invalid posts get 422 problem+json naming the bad field, and nothing is stored"""
    valid = random_post(rng)
    too_long = rng.choice([201, rng.randint(202, 1000)])
    tags_kind, not_a_list = rng.choice([
        ("a string", " ".join(valid["tags"]) or random_word(rng)),
        ("a number", rng.randint(1, 99)),
        ("an object", {"name": random_word(rng)}),
    ])
    cases: list[tuple[str, str, Post]] = [
        ("title", "A post without a title",
         {field: value for field, value in valid.items() if field != "title"}),
        ("title", f"A post with a {too_long}-character title",
         {**valid, "title": "".join(rng.choices(string.ascii_letters, k=too_long))}),
        ("title", "A post with an empty title", {**valid, "title": ""}),
        ("tags", f"A post whose tags are {tags_kind}, not a list",
         {**valid, "tags": not_a_list}),
    ]
    rng.shuffle(cases)
    before = count_posts(db)
    for field, what, body in cases:
        with context(what):
            expect_problem(http.post("/posts", json=body), 422, field=field)
    after = count_posts(db)
    expect(
        after == before,
        "Every invalid post was refused, yet rows were added to the posts table.",
        expected=f"{before} rows", actual=f"{after} rows",
        hint="Validate before you write: declare the rules on the pydantic model, so FastAPI "
             "refuses the request before your handler runs.",
    )


@hint(CREATE_HINT)
def test_get_post(http: httpx.Client, rng: random.Random) -> None:
    """GET /posts/{id} returns the post; an unknown id is 404 and a non-integer id is 422"""
    post = create_post(http, random_post(rng))
    expect_same(http.get(f"/posts/{post['id']}"), post)
    with context("A post that doesn't exist"):
        expect_problem(http.get(f"/posts/{unknown_id(rng)}"), 404)
    not_an_id = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 8)))
    with context("An id that isn't an integer"):
        expect_problem(http.get(f"/posts/{not_an_id}"), 422)


@hint(REPLACE_HINT)
def test_replace_post(http: httpx.Client, db: psycopg.Connection[Any],
                      rng: random.Random) -> None:
    """PUT /posts/{id} replaces the whole post: a field left out goes back to its default"""
    post = create_post(http, rich_post(rng))
    path = f"/posts/{post['id']}"
    change = rich_post(rng)
    response = http.put(path, json=change)
    expect_status(response, 200)
    replaced = expect_post(response, change)
    origin = where(response)
    expect(replaced["id"] == post["id"], f"{origin} returned another post.",
           expected=f"id {post['id']}", actual=f"id {replaced['id']}")
    expect(timestamp(replaced, "created_at", origin) == timestamp(post, "created_at", "POST"),
           f"{origin} should leave created_at as it was.",
           expected=post["created_at"], actual=replaced["created_at"])
    with context("After PUT"):
        expect_same(http.get(path), replaced)

    # Content, category and tags all hold something now; a PUT that leaves them out resets them.
    title_only = {"title": random_words(rng, 2, 6).capitalize()}
    response = http.put(path, json=title_only)
    expect_status(response, 200)
    body = json_body(response)
    expect(isinstance(body, dict), f"{origin} should answer with a post (a JSON object).",
           actual=describe(response))
    kept = {field: body.get(field) for field in DEFAULTS if body.get(field) != DEFAULTS[field]}
    expect(
        not kept,
        f"PUT {path} with only a title replaces the whole post: content, category and tags "
        f"were left out, so they go back to their defaults. {', '.join(kept)} kept "
        "the old value, as a PATCH would.",
        expected=short(DEFAULTS), actual=short(kept),
    )
    reset = expect_post(response, {**DEFAULTS, **title_only})
    with context("After a PUT with only a title"):
        expect_same(http.get(path), reset)

    # The title is required on PUT as on POST: leaving it out is a 422 that changes nothing.
    rows = count_posts(db)
    with context("A PUT without a title"):
        expect_problem(http.put(path, json={field: value for field, value in change.items()
                                            if field != "title"}), 422, field="title")
        expect_same(http.get(path), reset)
    expect(count_posts(db) == rows, "A refused PUT added rows to the posts table.",
           expected=f"{rows} rows", actual=f"{count_posts(db)} rows")
    with context("A post that doesn't exist"):
        expect_problem(http.put(f"/posts/{unknown_id(rng)}", json=random_post(rng)), 404)


@hint(UPDATED_AT_HINT)
def test_updated_at_moves(http: httpx.Client, rng: random.Random) -> None:
    """Every PUT moves updated_at forward, even one that changes nothing; created_at stays"""
    post = create_post(http, rich_post(rng))
    path = f"/posts/{post['id']}"
    created = timestamp(post, "created_at", "POST /posts")
    previous = post
    # First a PUT that changes every field, then the same body twice: nothing changes but time.
    bodies = [("a PUT that changes every field", rich_post(rng))]
    bodies += [(f"{which} PUT of the same body", bodies[0][1]) for which in ("A second", "A third")]
    for what, sent in bodies:
        time.sleep(TICK_SECONDS)
        with context(what):
            response = http.put(path, json=sent)
            expect_status(response, 200)
            body = expect_post(response, sent)
        expect(timestamp(body, "created_at", what) == created,
               f"{what} changed created_at; it never changes.",
               expected=post["created_at"], actual=body["created_at"])
        expect(timestamp(body, "updated_at", what) > timestamp(previous, "updated_at", "before"),
               f"{what} should move updated_at forward: every PUT writes the post, even one "
               "that changes no field.",
               expected=f"later than {previous['updated_at']}", actual=body["updated_at"])
        previous = body
    with context("After the PUTs"):
        expect_same(http.get(path), previous)


@hint("DELETE answers 204 with no body; afterwards the post is gone, so GET and DELETE are 404.")
def test_delete_post(http: httpx.Client, rng: random.Random) -> None:
    """DELETE /posts/{id} answers 204; afterwards GET and DELETE of that post are 404"""
    path = f"/posts/{create_post(http, random_post(rng))['id']}"
    response = http.delete(path)
    expect_status(response, 204)
    expect(response.content == b"", f"DELETE {path} should answer 204 with an empty body.",
           expected="no body", actual=describe(response))
    with context("After DELETE"):
        expect_problem(http.get(path), 404)
    with context("A second DELETE"):
        expect_problem(http.delete(path), 404)


@hint(ID_HINT)
def test_ids_bounded(http: httpx.Client, rng: random.Random) -> None:
    """Ids outside 1..2^63-1 get 422 on GET, PUT and DELETE: never a 404 or a 5xx"""
    post = create_post(http, random_post(rng))
    ids = [("0", 0), ("a negative id", -rng.randint(1, 2**63)), ("2^63", 2**63),
           ("an id of 20 digits", rng.randint(10**19, 10**20 - 1))]
    for what, post_id in ids:
        for method in ("GET", "PUT", "DELETE"):
            with context(f"{method} with {what} as the id"):
                expect_problem(http.request(method, f"/posts/{post_id}",
                                            json=random_post(rng) if method == "PUT" else None),
                               422)
    with context("After the refused requests"):
        expect_same(http.get(f"/posts/{post['id']}"), post)


@hint(NUL_HINT)
def test_nul_rejected(http: httpx.Client, db: psycopg.Connection[Any],
                      rng: random.Random) -> None:
    """A NUL character in title, content, category, a tag or ?term= is a 422 that writes nothing"""
    post = create_post(http, rich_post(rng))
    path = f"/posts/{post['id']}"
    rows = count_posts(db)
    for field in rng.sample(FIELDS, len(FIELDS)):
        for method, url in (("POST", "/posts"), ("PUT", path)):
            body = rich_post(rng)
            if field == "tags":
                at = rng.randrange(len(body["tags"]))
                body["tags"][at] = with_nul_char(rng, body["tags"][at])
            else:
                body[field] = with_nul_char(rng, body[field])
            with context(f"{method} {url} with a NUL character in {field}"):
                expect_problem(http.request(method, url, json=body), 422, field=field)
    with context("GET /posts with a NUL character in term"):
        expect_problem(http.get("/posts", params={"term": with_nul_char(rng, random_word(rng))}),
                       422, field="term")
    expect(count_posts(db) == rows,
           "Every post with a NUL character was refused, yet rows were added to the posts table.",
           expected=f"{rows} rows", actual=f"{count_posts(db)} rows")
    with context("After the refused PUTs"):
        expect_same(http.get(path), post)


@hint(SEARCH_HINT)
def test_search_by_term(http: httpx.Client, rng: random.Random) -> None:
    """GET /posts?term= returns exactly the posts whose title, content or category hold the term"""
    term = "".join(rng.choices(string.ascii_lowercase, k=6))
    places: list[str | None] = ["title", "content", "category", "tags", None] * 6
    rng.shuffle(places)
    created: dict[int, Post] = {}
    for place in places:
        payload = random_post(rng)
        if place is not None:
            embed(rng, payload, place, term)
        created[create_post(http, payload)["id"]] = payload
    expect_search(http, created, term, mixed_case(rng, term))


@hint(SEARCH_HINT)
def test_search_wildcards_literal(http: httpx.Client, rng: random.Random) -> None:
    """GET /posts?term= takes % and _ literally: term=% finds only posts holding a %"""
    left, right = (random_word(rng)[:4] for _ in range(2))
    other = rng.choice(string.ascii_lowercase)
    # Each post holds the pair of words around one separator; only a literal match may count.
    separators = {"title": "_", "content": other, "category": "%",
                  "tags": rng.choice("%_"), None: rng.choice(string.ascii_lowercase) * 3}
    created: dict[int, Post] = {}
    for place, separator in rng.sample(list(separators.items()), len(separators)):
        payload = random_post(rng)
        if place is None:
            payload["content"] += f" {left}{separator}{right}"
        else:
            embed(rng, payload, place, f"{left}{separator}{right}")
        created[create_post(http, payload)["id"]] = payload
    for term in ("%", "_", f"{left}_{right}", f"{left}%{right}"):
        expect_search(http, created, term, mixed_case(rng, term) if len(term) > 1 else term)


@hint(TRACEBACK_HINT)
def test_server_error_is_generic(http: httpx.Client, db: psycopg.Connection[Any],
                                 rng: random.Random) -> None:
    """A database failure gets a generic 500 problem: no traceback, no error text"""
    count_posts(db)
    title = random_words(rng, 2, 4).capitalize()
    secret = f"bb grader injected failure {random_word(rng)}{rng.randint(1000, 9999)}"
    with failing_insert(db, title, secret):
        response = http.post("/posts", json={**random_post(rng), "title": title})
    with context("The grader made the database refuse an insert"):
        expect_problem(response, 500)
    leaks = [what for what, text in (("a traceback", "Traceback"), ("a stack frame", 'File "'),
                                     ("the database's error message", secret))
             if text in response.text]
    expect(
        not leaks,
        "The grader made the database refuse an insert: POST /posts should answer a generic "
        f"500 problem, but its body holds {' and '.join(leaks)}. Log the details for yourself; "
        "a client must not see file paths, library versions or the database's words.",
        expected='{"type": "about:blank", "title": "Internal Server Error", "status": 500, ...}',
        actual=describe(response),
    )


@hint(PERSIST_HINT)
def test_posts_survive_restart(stack: Stack, http: httpx.Client, rng: random.Random) -> None:
    """Posts are still there after the app restarts"""
    posts = [create_post(http, random_post(rng)) for _ in range(3)]
    stack.restart("app")
    with capped_client(stack.app_url) as fresh, context("After a restart"):
        for post in posts:
            expect_same(fresh.get(f"/posts/{post['id']}"), post)
        listed = expect_post_list(fresh.get("/posts"))
    absent = [post["id"] for post in posts if post["id"] not in listed]
    expect(not absent, "After a restart, GET /posts should still list every post.",
           expected=f"ids {[post['id'] for post in posts]} among the posts",
           actual=f"ids {absent} missing")


@hint(CREATE_ALL_HINT)
def test_schema_from_migrations(stack: Stack, db: psycopg.Connection[Any]) -> None:
    """The app creates no table when it starts: the posts table comes from a migration"""
    count_posts(db)  # the migration made it
    aside = "bb_grader_posts_aside"
    db.execute(f"ALTER TABLE posts RENAME TO {aside}")
    started = False
    try:
        with contextlib.suppress(Failure):  # an app may need the table to start; that's fine
            stack.restart("app")
            started = True
        created_by_app = table_exists(db, "posts")
    finally:
        if table_exists(db, "posts"):
            db.execute("DROP TABLE posts")
        db.execute(f"ALTER TABLE {aside} RENAME TO posts")
    if not started:
        stack.restart("app")
    expect(
        not created_by_app,
        "The grader moved the posts table aside and restarted your app, and the app created a "
        "new, empty posts table as it started. Tables come from migrations: an app that creates "
        "them at start-up hides a missing or broken migration, and can't change a table that "
        "already holds data.",
        expected="no posts table after the app's start",
        actual="a posts table created by the app",
    )


@hint(FUZZ_HINT)
def test_no_server_errors(stack: Stack, http: httpx.Client, rng: random.Random) -> None:
    """Generated requests (valid and invalid) never get a 5xx or a traceback"""
    schema = load_schema(stack.app_url)
    operations = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise Failure("/openapi.json describes an operation that can't be used.",
                          actual=str(result.err()))
        operations.append(result.ok())
    existing = existing_id(http, rng)
    with capped_session() as session:  # reads at most bb's body limit of each answer
        fuzzer = Fuzzer(stack, session)
        for operation in operations:
            for case in classic_cases(operation, rng, existing):
                fuzzer.send(case)
            for mode in GenerationMode:
                fuzzer.generate(operation, mode, rng.getrandbits(64))
    if fuzzer.errors:
        first = fuzzer.errors[0]
        raise Failure(
            f"Of {fuzzer.sent} requests, {len(fuzzer.errors)} got a server error or a "
            f"traceback. The first: {first.case.method} {first.case.formatted_path} → "
            f"{first.response.status_code}.",
            expected="a status below 500 and no traceback, whatever the request",
            actual=first.account(stack.debug_url),
            hint=TRACEBACK_HINT if first.response.status_code < 500 else None,
        )


def existing_id(http: httpx.Client, rng: random.Random) -> int:
    """The id of a new post, for hand-picked cases to aim at (1 if creating one fails)."""
    response = http.post("/posts", json=random_post(rng))
    try:
        post_id = response.json().get("id") if response.status_code == 201 else None
    except (ValueError, AttributeError):
        post_id = None
    return post_id if type(post_id) is int else 1


def classic_cases(operation: Operation, rng: random.Random, existing: int) -> list[GeneratedCase]:
    """Inputs behind the classic 500s: an id one past BIGINT, and NUL in every string input."""
    ids = {parameter.name: existing for parameter in operation.path_parameters}
    body: Any = {"title": random_word(rng)} if operation.body else NOT_SET
    cases = [operation.Case(path_parameters={**ids, name: 2**63}, body=body) for name in ids]
    if operation.body:
        field = rng.choice(FIELDS)
        nul = with_nul_char(rng, random_word(rng))
        with_nul: Any = {**body, field: [nul] if field == "tags" else nul}
        cases.append(operation.Case(path_parameters=ids, body=with_nul))
    cases.extend(operation.Case(path_parameters=ids, body=body,
                                query={parameter.name: with_nul_char(rng, random_word(rng))})
                 for parameter in operation.query)
    return cases


def with_nul_char(rng: random.Random, text: str) -> str:
    at = rng.randint(0, len(text))
    return text[:at] + "\x00" + text[at:]


@dataclasses.dataclass(frozen=True)
class ServerError:
    """A request that got a 5xx or a traceback, with the app's log just after it."""

    case: GeneratedCase
    response: schemathesis.Response
    log: str

    def account(self, app_url: str) -> str:
        body = self.response.content.decode("utf-8", "replace")[:300]
        text = f"{reproduce(self.case, app_url)}\n→ {self.response.status_code} {body}"
        return f"{text}\nYour app's log ends with:\n{self.log}" if self.log else text


class Fuzzer:
    """Sends schemathesis cases to the app and keeps those answered with a server error."""

    def __init__(self, stack: Stack, session: requests.Session) -> None:
        self.stack = stack
        self.session = session
        self.deadline = time.monotonic() + FUZZ_BUDGET_SECONDS
        self.sent = 0
        self.errors: list[ServerError] = []

    def send(self, case: GeneratedCase) -> bool:
        """Send ``case``; record and return whether it got a server error or a traceback."""
        self.sent += 1
        try:
            response = case.call(base_url=self.stack.app_url, session=self.session, timeout=10)
        except requests.RequestException as exc:
            raise Failure(
                f"{case.method} {case.formatted_path} got no answer: your app dropped the "
                "connection or took over 10 s.",
                actual=f"{type(exc).__name__}: {exc}\n{reproduce(case, self.stack.debug_url)}",
            ) from None
        if response.status_code < 500 and b"Traceback" not in response.content:
            return False
        # The log is read right away, so that its last traceback is this request's.
        log = "" if self.errors else app_log(self.stack)
        self.errors.append(ServerError(case, response, log))
        return True

    def generate(self, operation: Operation, mode: GenerationMode, seed: int) -> None:
        """Send up to FUZZ_EXAMPLES generated cases, stopping at the first server error."""
        stop = False

        @hypothesis_seed(seed)
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], verbosity=Verbosity.quiet,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def probe(case: GeneratedCase) -> None:
            nonlocal stop
            if not stop and time.monotonic() < self.deadline:
                stop = self.send(case)

        with contextlib.suppress(Unsatisfiable):  # nothing of this kind (an invalid GET /health)
            probe()


def app_log(stack: Stack) -> str:
    """The app's last logged traceback, cut to its frames in /app and the error itself."""
    lines = [line for line in stack.logs("app", tail=400).splitlines()
             if not ACCESS_LOG.match(line)]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if not starts:
        return ""
    block = lines[starts[-1]:]
    # Frames and their code lines are indented; the error is what follows the last of them.
    indented = [i for i, line in enumerate(block) if line.startswith(" ")]
    end = indented[-1] + 1 if indented else 1
    kept = [block[0]]
    for i in range(1, end):
        if block[i].startswith('  File "/app/'):
            kept.extend(["  ...", *block[i:i + 2]])
    kept.append("  ...")
    kept.extend(line[:300] for line in block[end:end + 4])
    return "\n".join(kept)


def load_schema(app_url: str) -> Any:
    url = f"{app_url}/openapi.json"
    try:
        # Read through bb's capped client (schemathesis' own loader reads a body of any size).
        with capped_client(app_url) as client:
            response = client.get("/openapi.json")
        response.raise_for_status()
        # An explicit config, so a schemathesis.toml in the working directory changes nothing.
        schema = schemathesis.openapi.from_dict(response.json(), config=schemathesis.Config())
        schema.location = url
        return schema
    except Failure:
        raise
    except Exception as exc:  # schemathesis wraps network and parse errors in several types
        raise Failure(f"Could not load the API description from {url}.",
                      expected="an OpenAPI document (FastAPI serves one by default)",
                      actual=f"{type(exc).__name__}: {exc}") from None


def reproduce(case: GeneratedCase, debug_url: str) -> str:
    """A curl line for ``case`` against ``debug_url``: where `bb up` serves the project."""
    try:
        return f"Reproduce (after `bb up`): {case.as_curl_command(base_url=debug_url)}"
    except Exception:  # curl rendering is a courtesy; never let it hide the real failure
        return f"{case.method} {case.formatted_path}"
