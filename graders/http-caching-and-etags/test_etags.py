"""Checks for http-caching-and-etags: validators, conditional requests, compare-and-set updates
and Cache-Control, over HTTP, with the database read only to prove a refused update changed
nothing."""

from __future__ import annotations

import functools
import hashlib
import hmac
import random
import re
import string
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from bb.grader import (
    Call,
    Failure,
    RawHTTPError,
    app_secret,
    describe,
    expect,
    expect_problem,
    hint,
    json_body,
    raw_connection,
    simultaneous,
    slow_writes,
)
from bb.grader.plugin import Stack

Article = dict[str, Any]

#: The app's JWT_SECRET (bb draws a new one every grade): the grader signs its callers' tokens
#: with it. Set from the stack before the first check.
TOKEN_SECRET = ""


@pytest.fixture(scope="session", autouse=True)
def _token_secret(stack: Stack) -> None:
    global TOKEN_SECRET
    TOKEN_SECRET = app_secret(stack)
#: The fields a client sends; PUT replaces all of them.
FIELDS = ("title", "body", "published")
#: A strong entity tag (RFC 9110 §8.8.3): a quoted string of visible characters, no W/.
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e\x80-\xff]*"')
WEAK_ETAG = re.compile(r'W/"[\x21\x23-\x7e\x80-\xff]*"')

#: Rounds of two simultaneous PUTs with the same If-Match (check 4). One lost round is a fail.
#: Measured: the reference answered one 200 and one 412 in 20 of 20 rounds in 9 of 9 grades;
#: the check took 6.5 s at a load average of ~10, 13.2 to 24.7 s at 20 to 25 (at most 1.2 s a
#: round). The check-then-update variant got two 200s from round 1 on, in 4 of 4 grades (the
#: two PUTs left 0.1 ms apart).
RACE_ROUNDS = 20
#: Extra seconds each UPDATE of articles takes during the race, as on a busy database: a
#: read-then-write in Python keeps its window open for at least this long, so the race shows
#: on every round, while a compare-and-set UPDATE merely queues.
RACE_SLOW_UPDATE = 0.05
#: How long the two PUTs of one round may take. A whole round of the reference (a GET, both
#: PUTs, a GET) took at most ~1.2 s at a load average of 25: over 8x headroom.
RACE_TIMEOUT = 10.0

ETAG_HINT = (
    "Derive the ETag from a version column or a hash of canonical JSON, and quote it: "
    'ETag: "42.3". Every field of the representation must change it.'
)
NOT_MODIFIED_HINT = (
    "A 304 Not Modified has no body at all, but it carries the same ETag (and Cache-Control) "
    "as the 200 it stands for. Return Response(status_code=304, headers=...), not your JSON."
)
NONE_MATCH_HINT = (
    'If-None-Match uses the weak comparison: W/"x" matches "x", the header may list several '
    "tags, and * matches any."
)
LIST_HINT = (
    "The list's ETag must cover every field of every item in it: hash the exact bytes you send."
)
IF_MATCH_HINT = (
    "Require If-Match on PUT (428 without it) and compare it with the current version inside "
    "the UPDATE's WHERE clause: UPDATE articles SET ..., version = version + 1 WHERE id = :id "
    "AND version = :v. No row updated means 412."
)
STRONG_HINT = (
    'If-Match uses the strong comparison: a weak tag (W/"x") never matches, not even the '
    "current one."
)
RACE_HINT = (
    "Checking the version in Python and then running an UPDATE without it lets two writers "
    "pass the check together. Compare inside the UPDATE: ... WHERE id = :id AND version = :v, "
    "and answer 412 when it updated no row."
)
CACHE_HINT = (
    "Everything that changes the response must be part of the cache key; answers to a "
    "signed-in caller need Cache-Control: private (or no-store). Only the public list is "
    "public, max-age=60."
)


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


# --- callers and random articles ---------------------------------------------------------


def token_for(user: str) -> str:
    signature = hmac.new(TOKEN_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()
    return f"{user}.{signature}"


def signed_in(user: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user)}", **headers}


def random_user(rng: random.Random) -> str:
    return "u-" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=10))


def random_words(rng: random.Random, count: int) -> str:
    letters = string.ascii_lowercase + "éüøç"
    return " ".join("".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(count))


def random_article(rng: random.Random, *, published: bool = True) -> Article:
    return {"title": random_words(rng, rng.randint(2, 5)).capitalize(),
            "body": random_words(rng, rng.randint(10, 40)), "published": published}  # fmt: skip


def changed(article: Article, field: str, rng: random.Random) -> Article:
    """``article`` with only ``field`` given a new value."""
    new = dict(article)
    if field == "published":
        new["published"] = not article["published"]
    elif field == "title":
        new["title"] = random_words(rng, rng.randint(2, 5)).capitalize()
    else:
        new["body"] = article["body"] + " " + random_words(rng, rng.randint(1, 4))
    return new


def sent_fields(article: Article) -> Article:
    return {field: article.get(field) for field in FIELDS}


def create(http: httpx.Client, user: str, article: Article) -> int:
    response = http.post("/articles", json=article, headers=signed_in(user))
    expect(
        response.status_code == 201,
        f"POST /articles (signed in as {user}) should create the article with 201; the "
        "starter's create works, keep it working.",
        expected=201, actual=describe(response),
    )
    created = json_body(response)
    expect(isinstance(created, dict) and isinstance(created.get("id"), int),
           "POST /articles should answer the article with its integer id.",
           expected='{"id": 1, ...}', actual=describe(response))
    return int(created["id"])


def get(http: httpx.Client, path: str, user: str | None = None, **headers: str
        ) -> httpx.Response:  # fmt: skip
    return http.get(path, headers=signed_in(user, **headers) if user else headers)


def put(http: httpx.Client, article_id: int, user: str, article: Article,
        **headers: str) -> httpx.Response:  # fmt: skip
    return http.put(f"/articles/{article_id}", json=article, headers=signed_in(user, **headers))


def etag_of(response: httpx.Response, what: str, *, hint: str = ETAG_HINT) -> str:
    """The response's ETag, which must be there and strong."""
    etag = response.headers.get("etag")
    expect(
        etag is not None,
        f"{what} should carry an ETag header (a validator clients send back in "
        "If-None-Match and If-Match).",
        expected='ETag: "…"', actual=f"no ETag header: {describe(response)}", hint=hint,
    )
    assert etag is not None
    expect(
        STRONG_ETAG.fullmatch(etag) is not None,
        f"{what}: the ETag should be a strong entity tag, a string in double quotes (RFC 9110 "
        "§8.8.3). "
        + ("A weak one (W/…) can never match the If-Match of a PUT." if WEAK_ETAG.fullmatch(etag)
           else "Without the quotes, clients and caches can't read it back."),
        expected='"…" (quotes included)', actual=f"ETag: {etag}", hint=hint,
    )
    return etag


def expect_ok(response: httpx.Response, status: int, what: str, *, hint: str | None = None
              ) -> None:  # fmt: skip
    expect(response.status_code == status, f"{what} should answer {status}.", expected=status,
           actual=describe(response), hint=hint)  # fmt: skip


def row_of(db: psycopg.Connection[Any], article_id: int) -> dict[str, Any]:
    """The article's whole row, as the database holds it."""
    row = db.execute("SELECT to_jsonb(a) FROM articles a WHERE id = %s", (article_id,)).fetchone()
    return {} if row is None else dict(row[0])


def cache_directives(response: httpx.Response) -> dict[str, str | None]:
    """Cache-Control as {directive: value}, names lowercased, quotes around values dropped."""
    directives: dict[str, str | None] = {}
    for value in response.headers.get_list("cache-control"):
        for part in value.split(","):
            name, equals, argument = part.strip().partition("=")
            if name:
                directives[name.strip().lower()] = argument.strip().strip('"') if equals else None
    return directives


def shown_cache_control(response: httpx.Response) -> str:
    values = response.headers.get_list("cache-control")
    return "Cache-Control: " + ", ".join(values) if values else "no Cache-Control header"


def expect_not_modified(app_url: str, path: str, headers: dict[str, str], etag: str,
                        what: str, *, hint: str = NOT_MODIFIED_HINT) -> None:  # fmt: skip
    """A conditional GET answers 304 with no body and the same ETag, and the connection
    stays usable: bytes after a 304's head would be read as the next response."""
    with raw_connection(app_url, timeout=10) as conn:
        conn.request("GET", path, headers=headers)
        try:
            answer = conn.read_response()
        except RawHTTPError as exc:
            raise Failure(f"{what}: {exc.message}", hint=hint) from None
        shown = "; ".join(f"{k}: {v}" for k, v in answer.headers)
        expect(
            answer.status == 304,
            f"{what} should answer 304 Not Modified: the client's copy is current.",
            expected=304, actual=f"{answer.status} {answer.reason}; {shown}; {answer.text[:200]}",
            hint=hint,
        )
        expect(
            answer.header("etag") == etag,
            f"{what}: the 304 should carry the same ETag as the 200 it stands for ({etag}).",
            expected=f"ETag: {etag}", actual=shown or "no headers", hint=hint,
        )
        conn.request("GET", "/health")
        try:
            after = conn.read_response()
        except RawHTTPError as exc:
            closed = "closed the connection" in exc.message
            raise Failure(
                f"{what}: a 304 has no body, so the next response on the same connection "
                f"should follow its head directly. It did not: {exc.message}"
                + (" Servers close the connection when an app tries to send a body after a "
                   "304's head." if closed else " Those bytes were the 304's body."),
                expected="nothing after the 304's head", actual=exc.message, hint=hint,
            ) from None
        expect(
            after.status == 200,
            f"{what}: after the 304, GET /health on the same connection should answer 200; "
            "the 304 must have carried a body.",
            expected=200, actual=after.describe(), hint=hint,
        )


# --- the checks ---------------------------------------------------------------------------


@recorded
@hint(NOT_MODIFIED_HINT)
def test_conditional_get(http: httpx.Client, app_url: str, rng: random.Random) -> None:
    """GET /articles/{id} has a strong ETag; If-None-Match holding it answers 304 with no body"""
    user = random_user(rng)
    article = random_article(rng)
    article_id = create(http, user, article)
    path = f"/articles/{article_id}"

    first = get(http, path)
    expect_ok(first, 200, f"GET {path}")
    etag = etag_of(first, f"GET {path}")
    again = get(http, path)
    expect(
        again.headers.get("etag") == etag,
        f"GET {path} twice, with nothing changed in between, should give the same ETag both "
        "times: derive it from the article's content or version, never from the time or a "
        "random number.",
        expected=etag, actual=f"ETag: {again.headers.get('etag')}", hint=ETAG_HINT,
    )

    expect_not_modified(app_url, path, {"If-None-Match": etag}, etag,
                        f"GET {path} with If-None-Match: {etag}")  # fmt: skip

    decoys = [f'"{rng.getrandbits(64):x}"' for _ in range(2)]
    cases = [
        (f"{decoys[0]}, {etag}, {decoys[1]}", True, "a list holding the current ETag"),
        (f"W/{etag}", True, "the weak form of the current ETag (If-None-Match compares weakly)"),
        ("*", True, "* (any current representation)"),
        (decoys[0], False, "an ETag the article never had"),
    ]
    rng.shuffle(cases)
    for header, matches, meaning in cases:
        what = f"GET {path} with If-None-Match: {header} ({meaning})"
        if matches:
            expect_not_modified(app_url, path, {"If-None-Match": header}, etag, what,
                                hint=NONE_MATCH_HINT)  # fmt: skip
        else:
            response = get(http, path, **{"If-None-Match": header})
            expect_ok(response, 200, what, hint=NONE_MATCH_HINT)
            expect(
                sent_fields(json_body(response)) == article
                and response.headers.get("etag") == etag,
                f"{what} should answer the whole article, with its ETag {etag}.",
                expected=article, actual=describe(response), hint=NONE_MATCH_HINT,
            )

    # A draft exists for its author only; its answers are validated all the same.
    draft_id = create(http, user, random_article(rng, published=False))
    draft_path = f"/articles/{draft_id}"
    response = get(http, draft_path, user)
    expect_ok(response, 200, f"GET {draft_path} (a draft, by its author)")
    draft_etag = etag_of(response, f"GET {draft_path} (a draft, by its author)")
    expect(draft_etag != etag, f"Two different articles answered the same ETag {etag}.",
           expected="a different ETag", actual=draft_etag, hint=ETAG_HINT)
    expect_not_modified(app_url, draft_path, signed_in(user, **{"If-None-Match": draft_etag}),
                        draft_etag, f"GET {draft_path} (by its author) with If-None-Match: "
                        f"{draft_etag}")  # fmt: skip


@recorded
@hint(ETAG_HINT)
def test_etag_changes(http: httpx.Client, app_url: str, rng: random.Random) -> None:
    """Every change to an article gives it a new ETag, and the public list a new one too"""
    require("conditional_get", "this check follows ETags through updates")
    user = random_user(rng)
    ids = [create(http, user, random_article(rng)) for _ in range(3)]
    target, bystander = rng.sample(ids, 2)
    path = f"/articles/{target}"
    article = sent_fields(json_body(get(http, path)))

    listed = get(http, "/articles")
    expect_ok(listed, 200, "GET /articles")
    list_etag = etag_of(listed, "GET /articles (the public list)", hint=LIST_HINT)
    expect_not_modified(app_url, "/articles", {"If-None-Match": list_etag}, list_etag,
                        f"GET /articles with If-None-Match: {list_etag}", hint=LIST_HINT)
    bystander_etag = etag_of(get(http, f"/articles/{bystander}"), f"GET /articles/{bystander}")

    seen = [etag_of(get(http, path, user), f"GET {path}")]
    # Each field alone, in random order: an ETag that ignores one of them fails on that one.
    # Body and title first, while the article is still in the public list.
    steps = ["title", "body"]
    rng.shuffle(steps)
    for field in [*steps, "published"]:
        old_etag, old_list = seen[-1], list_etag
        article = changed(article, field, rng)
        response = put(http, target, user, article, **{"If-Match": old_etag})
        expect_ok(response, 200, f"PUT {path} with If-Match: {old_etag} (its current ETag), "
                  f"changing only {field}", hint=IF_MATCH_HINT)  # fmt: skip
        new_etag = etag_of(response, f"PUT {path}: the answer")
        expect(
            new_etag not in seen,
            f"PUT {path} changed only {field}, so the article has a new representation and "
            f"needs a new ETag; it answered {new_etag}, an ETag the article already had. "
            "Every field must count.",
            expected=f"an ETag other than {', '.join(seen)}", actual=new_etag,
        )
        seen.append(new_etag)
        after = get(http, path, user, **{"If-None-Match": old_etag})
        expect_ok(after, 200, f"After {field} changed, GET {path} with the old If-None-Match: "
                  f"{old_etag}")  # fmt: skip
        expect(
            after.headers.get("etag") == new_etag and sent_fields(json_body(after)) == article,
            f"After {field} changed, GET {path} should answer the new article with the ETag "
            f"the PUT answered ({new_etag}).",
            expected=f"ETag: {new_etag}, {article}", actual=f"ETag: {after.headers.get('etag')}"
            f"; {describe(after)}",
        )
        listed = get(http, "/articles", **{"If-None-Match": old_list})
        expect(
            listed.status_code == 200,
            f"Article {target} of the public list changed its {field}, so GET /articles with "
            f"If-None-Match: {old_list} (the list's ETag before) should answer 200 with the new "
            "list, not 304: the list's ETag must change whenever any item in it changes.",
            expected=200, actual=describe(listed), hint=LIST_HINT,
        )
        list_etag = etag_of(listed, "GET /articles", hint=LIST_HINT)
        expect(list_etag != old_list,
               f"The public list changed (article {target}'s {field}), but its ETag stayed "
               f"{old_list}.", expected="a new ETag", actual=list_etag, hint=LIST_HINT)

    # Deleting an item changes the list; an article nobody touched keeps its ETag.
    bystander_now = get(http, f"/articles/{bystander}")
    expect(
        bystander_now.headers.get("etag") == bystander_etag,
        f"Article {bystander} did not change, so its ETag should not either.",
        expected=bystander_etag, actual=f"ETag: {bystander_now.headers.get('etag')}",
    )
    old_list = get(http, "/articles").headers.get("etag", "")
    gone = http.delete(f"/articles/{bystander}", headers=signed_in(user))
    expect_ok(gone, 204, f"DELETE /articles/{bystander}")
    listed = get(http, "/articles", **{"If-None-Match": old_list})
    expect(listed.status_code == 200 and listed.headers.get("etag") != old_list,
           f"Article {bystander} left the public list, so GET /articles with If-None-Match: "
           f"{old_list} should answer 200 with a new ETag.",
           expected="200, a new ETag", actual=f"{listed.status_code}, ETag: "
           f"{listed.headers.get('etag')}", hint=LIST_HINT)  # fmt: skip


@recorded
@hint(IF_MATCH_HINT)
def test_if_match_required(http: httpx.Client, db: psycopg.Connection[Any],
                           rng: random.Random) -> None:  # fmt: skip
    """PUT needs the current ETag in If-Match: a stale or weak one is 412, none is 428"""
    require("conditional_get", "If-Match carries an ETag")
    user = random_user(rng)
    article = random_article(rng)
    article_id = create(http, user, article)
    path = f"/articles/{article_id}"
    stale = etag_of(get(http, path), f"GET {path}")
    article = changed(article, "body", rng)
    response = put(http, article_id, user, article, **{"If-Match": stale})
    expect_ok(response, 200, f"PUT {path} with If-Match: {stale} (its current ETag)")
    current = etag_of(response, f"PUT {path}: the answer")

    refusals = [
        (stale, 412, f"the ETag it had before the last update ({stale})", IF_MATCH_HINT),
        (None, 428, "no If-Match at all", IF_MATCH_HINT),
        (f"W/{current}", 412, f"the weak form of its current ETag (W/{current})", STRONG_HINT),
    ]
    rng.shuffle(refusals)
    for header, status, meaning, why in refusals:
        before = row_of(db, article_id)
        attempt = changed(article, rng.choice(FIELDS), rng)
        headers = {} if header is None else {"If-Match": header}
        response = put(http, article_id, user, attempt, **headers)
        expect(
            response.status_code == status,
            f"PUT {path} with {meaning} should be refused with {status}"
            + (": the client has not seen the current version." if status == 412 else
               ": an update must say which version it replaces (RFC 6585).")
            + (" If-Match compares strongly: a weak tag never matches." if why is STRONG_HINT
               else ""),
            expected=status, actual=describe(response), hint=why,
        )
        expect_problem(response, status, hint=why)
        after = row_of(db, article_id)
        expect(after == before,
               f"PUT {path} with {meaning} was refused, so the row must not change; it did.",
               expected=before, actual=after, hint=why)  # fmt: skip

    final = changed(article, "title", rng)
    response = put(http, article_id, user, final, **{"If-Match": current})
    expect_ok(response, 200, f"PUT {path} with If-Match: {current} (its current ETag, after "
              "the refused attempts)")  # fmt: skip
    expect(sent_fields(json_body(response)) == final,
           f"PUT {path} should answer the article as replaced.", expected=final,
           actual=describe(response))  # fmt: skip


@recorded
@hint(RACE_HINT)
def test_concurrent_puts(http: httpx.Client, app_url: str, db: psycopg.Connection[Any],
                         rng: random.Random) -> None:  # fmt: skip
    """Two PUTs with the same If-Match, sent together 20 times: one 200 and one 412 each time"""
    require("conditional_get", "both writers send the ETag they read")
    user = random_user(rng)
    article_id = create(http, user, random_article(rng))
    path = f"/articles/{article_id}"
    with slow_writes(db, "articles", RACE_SLOW_UPDATE):
        for round_number in range(1, RACE_ROUNDS + 1):
            etag = etag_of(get(http, path, user), f"GET {path}")
            bodies = [random_article(rng, published=rng.random() < 0.5) for _ in range(2)]
            result = simultaneous(app_url, [
                Call("PUT", path, json=body, headers=signed_in(user, **{"If-Match": etag}))
                for body in bodies
            ], timeout=RACE_TIMEOUT)
            expect(not result.errors,
                   f"Round {round_number}: both PUTs should be answered within "
                   f"{RACE_TIMEOUT:g} s.", expected="two answers",
                   actual="; ".join(result.errors))  # fmt: skip
            statuses = result.statuses
            shown = "; ".join(describe(o.response) for o in result.outcomes if o.response)
            expect(
                sorted(s or 0 for s in statuses) == [200, 412],
                f"Round {round_number} of {RACE_ROUNDS}: two clients read {path} (ETag {etag}) "
                f"and sent a PUT each with If-Match: {etag}, at the same instant. Exactly one "
                f"should win (200) and the other find the article changed (412); the answers "
                f"were {statuses} (the two left {result.spread * 1000:.1f} ms apart)."
                + (" Both writes were accepted, so the first one was silently lost."
                   if statuses == [200, 200] else ""),
                expected="one 200 and one 412", actual=shown,
            )
            winner = statuses.index(200)
            winning = result.outcomes[winner].response
            assert winning is not None
            now = get(http, path, user)
            expect(
                sent_fields(json_body(now)) == bodies[winner]
                and now.headers.get("etag") == winning.headers.get("etag"),
                f"Round {round_number}: the article should now be exactly what the winning PUT "
                "sent, with the ETag that PUT answered.",
                expected=f"{bodies[winner]}, ETag: {winning.headers.get('etag')}",
                actual=f"{describe(now)}, ETag: {now.headers.get('etag')}",
            )


@recorded
@hint(CACHE_HINT)
def test_cache_control(http: httpx.Client, app_url: str, rng: random.Random) -> None:
    """Answers to a signed-in caller are private; the public list is public, max-age=60"""
    user = random_user(rng)
    published = random_article(rng)
    response = http.post("/articles", json=published, headers=signed_in(user))
    expect_ok(response, 201, "POST /articles")
    published_id = int(json_body(response)["id"])
    authenticated = [("POST /articles (signed in)", response)]
    draft = http.post("/articles", json=random_article(rng, published=False),
                      headers=signed_in(user))  # fmt: skip
    expect_ok(draft, 201, "POST /articles (a draft)")
    draft_id = int(json_body(draft)["id"])

    listed = get(http, "/articles")
    expect_ok(listed, 200, "GET /articles")
    directives = cache_directives(listed)
    expect(
        "public" in directives and directives.get("max-age") == "60"
        and not {"private", "no-store", "no-cache"} & set(directives),
        "GET /articles is the same for everyone: it should say Cache-Control: public, "
        "max-age=60, so browsers and shared caches may keep it for a minute.",
        expected="Cache-Control: public, max-age=60", actual=shown_cache_control(listed),
    )
    if (list_etag := listed.headers.get("etag")) is not None:
        revalidated = get(http, "/articles", **{"If-None-Match": list_etag})
        if revalidated.status_code == 304:
            expect(
                cache_directives(revalidated) == directives,
                "A 304 for GET /articles should carry the same Cache-Control as its 200: a "
                "cache refreshes its stored copy with the 304's headers.",
                expected=shown_cache_control(listed), actual=shown_cache_control(revalidated),
                hint=NOT_MODIFIED_HINT,
            )

    mine = get(http, "/me/articles", user)
    expect_ok(mine, 200, "GET /me/articles (signed in)")
    authenticated.append(("GET /me/articles (signed in; it lists drafts)", mine))
    own_draft = get(http, f"/articles/{draft_id}", user)
    expect_ok(own_draft, 200, f"GET /articles/{draft_id} (a draft, by its author)")
    authenticated.append((f"GET /articles/{draft_id} (a draft, signed in as its author)",
                          own_draft))  # fmt: skip
    current = get(http, f"/articles/{published_id}", user)
    etag = current.headers.get("etag")
    replaced = put(http, published_id, user, random_article(rng),
                   **({"If-Match": etag} if etag else {}))  # fmt: skip
    if replaced.status_code == 200:  # If-Match itself is the business of other checks
        authenticated.append((f"PUT /articles/{published_id} (signed in)", replaced))
    rng.shuffle(authenticated)
    for what, answer in authenticated:
        directives = cache_directives(answer)
        expect(
            bool({"private", "no-store"} & set(directives)) and "public" not in directives,
            f"{what}: an answer to a signed-in caller may hold what only they may see, so it "
            "needs Cache-Control: private (or no-store), never public: a shared cache would "
            "hand it to the next person asking for the same URL.",
            expected="Cache-Control: private, … (or no-store)", actual=shown_cache_control(answer),
        )
