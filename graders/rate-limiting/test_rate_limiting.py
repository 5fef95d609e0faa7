"""Checks for rate-limiting: a per-key fixed window shared by two replicas, exact under
concurrency, with honest 429s, and an API that keeps serving while Redis is hung or stopped.

Every check uses API keys of its own, random on every run, so that no check's counting shows
in another's. Redis is read only to show the learner what their limiter keeps when a check
fails; the last check makes it hang (CLIENT PAUSE, which Redis ends by itself), then stops it
and starts it again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import re
import string
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bb.grader import (
    Call,
    Failure,
    LoadResult,
    capped_client,
    expect,
    expect_problem,
    hint,
    open_loop,
    percentile,
    simultaneous,
)

#: RATE_LIMIT as exercise.yaml sets it: 10 requests per 10 s per API key.
LIMIT = 10
WINDOW = 10
PATH = "/quota-demo"

#: Requests sent at the same instant with one fresh key (check 5): exactly LIMIT may pass, in
#: each of CONCURRENT_ROUNDS rounds (a fresh key each). Measured: the reference let exactly 10
#: through in every round of 30 grades (load average 3 to 15). The get-then-set variant let 25
#: and 50 through in its first round; a get-then-set done in one worker thread each let 10 to
#: 50 through, once exactly 10 in the first round of a freshly started app (its thread pool
#: still growing) and never fewer than 18 in the second: hence two rounds.
CONCURRENT = 50
CONCURRENT_ROUNDS = 2
#: How long each of the CONCURRENT requests may take. The reference answered all 50 of a round
#: within 0.06 to 0.5 s at a load average of 3 to 9 (1.15 s at most): over 8x headroom.
CONCURRENT_TIMEOUT = 10.0
#: Check 6 asks again this long after the 429's Retry-After has passed. The reference's
#: Retry-After is PTTL rounded up, so it needs none; this only absorbs the grader's own
#: scheduling, and is far below the 500 ms that a Retry-After from TTL (rounded to the
#: nearest second) can promise too early.
RESET_GRACE = 0.05
#: While Redis is hung and then stopped (check 7), OUTAGE_STREAMS streams of requests run at
#: once, half on each replica, each with a fresh key and OUTAGE_REQUESTS requests at
#: OUTAGE_RATE per second (fewer than LIMIT per key, so that a limiter that falls back to
#: counting in memory still lets them through). Each request may take OUTAGE_TIMEOUT s. The
#: p95 of 36 samples is the second slowest, so one stray spike on a busy machine does not
#: decide it.
OUTAGE_STREAMS = 4
OUTAGE_REQUESTS = 9
OUTAGE_RATE = 9.0
OUTAGE_TIMEOUT = 3.0
#: How long Redis hangs (CLIENT PAUSE ALL, which Redis ends by itself). Longer than a stream's
#: schedule (1 s) plus the p95 limit, so that a client without timeouts, whose requests wait
#: for the hang to end, fails on every run: its p95 measured 2.54 to 2.63 s.
HANG_SECONDS = 2.5
#: The spec's p95 while Redis is unavailable. Measured, the reference (0.2 s socket timeouts,
#: a 0.5 s deadline per call): while Redis hung, p95 0.23 to 0.29 s at a load average of 3 to
#: 5, 0.45 to 0.56 s at 9 (the one threshold here with under 2x headroom on a busy machine:
#: the spec pins it); while Redis was stopped, 0.02 to 0.22 s. The fail-closed variant answered
#: 36 × 503. Before the reference had its deadline, 2 of about 20 grades saw 3 and 12 requests
#: of the stopped phase wait over 3 s: lookups of the stopped container's name that went
#: unanswered (2 in 60 took 5 s on this machine).
OUTAGE_P95 = 1.0

RETRY_AFTER = re.compile(r"[0-9]+")

LIMIT_HINT = (
    "Over the limit is 429 Too Many Requests, a problem+json document, with Retry-After in "
    "whole seconds (an integer, never a date or 7.5).",
    "raise HTTPException(429, detail, headers={'Retry-After': str(seconds)}): app/problems.py "
    "turns it into a problem document and keeps its headers. Take the seconds from the key's "
    "PTTL, rounded up: math.ceil(pttl_ms / 1000).",
)
REMAINING_HINT = (
    "X-RateLimit-Remaining is the limit minus the count including this request: 9 after the "
    "first of 10, 0 after the tenth.",
    "INCR answers the count with this request included: remaining = max(limit - count, 0). "
    "Set it on the 200 (response.headers[...]) and on the 429 (the HTTPException's headers).",
)
KEYS_HINT = (
    "The counter's key must contain the API key: one client using up its quota must not touch "
    "another's.",
    "Name the Redis key after the API key, e.g. f'ratelimit:{api_key}'; a constant key is one "
    "counter for every client together.",
)
SHARED_HINT = (
    "Each replica has its own memory. Keep counters in Redis, and update them atomically "
    "(INCR + EXPIRE in a pipeline or Lua).",
    "Any replica may serve the next request, and a dict counts only what its own process saw. "
    "Count with redis_client (app/redis_client.py): pipe = redis_client.pipeline("
    "transaction=True); pipe.incr(key); pipe.expire(key, window, nx=True); pipe.pttl(key); "
    "count, _, pttl_ms = pipe.execute().",
)
ATOMIC_HINT = (
    "Two requests can read the same count. Use the atomic INCR result.",
    "GET, compare in Python, SET is a read-modify-write: requests that arrive together all "
    "read the same count. INCR adds one and answers the new count in one step inside Redis: "
    "allowed = count <= limit, with the expiry set in the same MULTI (or a Lua script).",
)
RESET_HINT = (
    "Every counter needs an expiry, set when its window starts: without one, a key that reached "
    "its limit stays limited forever.",
    "EXPIRE key window NX in the same MULTI as the INCR gives the key its expiry on the "
    "window's first request only. Take Retry-After from PTTL, rounded up: TTL rounds to the "
    "nearest second, and can promise half a second too early.",
)
OUTAGE_HINT = (
    "Decide a policy (here: fail-open), and put a short timeout on the Redis client.",
    "Catch redis.RedisError and TimeoutError around the limiter's Redis calls and let the "
    "request through (log it). Put a deadline around each whole call (async with "
    "asyncio.timeout(0.2)) as well as short socket timeouts on the client: a socket timeout "
    "does not cover the DNS lookup of a Redis that is gone.",
)


# --- checks that need another check ------------------------------------------------------

#: Checks that passed in this grade. A check that builds on another is skipped when that one
#: did not pass, with the reason, instead of failing for a cause the learner already sees.
PASSED: set[str] = set()
#: The key check 1 limited, when its 429 arrived (time.monotonic()) and its Retry-After:
#: check 6 waits out that very window, which has then already partly passed.
LIMITED: dict[str, tuple[str, float, int]] = {}


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


#: Set by check 1 once a key's 11th request got 429, whatever its body and Retry-After: the
#: checks that only count 200s and 429s need no more than that.
REFUSED_ELEVENTH = "refused_eleventh"


def require_limiting(why: str) -> None:
    if REFUSED_ELEVENTH not in PASSED:
        pytest.skip(
            "can't check until limit_and_retry_after sees the 11th request of a key refused "
            f"with 429: {why}"
        )


# --- asking the app -----------------------------------------------------------------------


def fresh_key(rng: Any) -> str:
    return "key-" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=16))


def ask(client: httpx.Client, key: str) -> httpx.Response:
    return client.get(PATH, headers={"X-API-Key": key})


def shown(response: httpx.Response) -> str:
    """Status, the rate-limit headers and the start of the body, for failure messages."""
    names = (
        "content-type",
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    )
    headers = "; ".join(
        f"{name}: {response.headers[name]}" for name in names if name in response.headers
    )
    body = response.text[:200] + ("…" if len(response.text) > 200 else "")
    return f"{response.status_code} [{headers or 'no rate-limit headers'}] {body}".rstrip()


def remaining_of(response: httpx.Response) -> str:
    return response.headers.get("x-ratelimit-remaining", "(none)")


def redis_view(redis: Any, api_key: str) -> str:
    """What Redis holds for ``api_key`` (keys containing it, their values and expiries), or
    a few of its keys when none contains it. Only ever read, for failure messages."""
    try:
        pattern = "*" + re.sub(r"([*?\[\]\\])", r"\\\1", api_key) + "*"
        names = list(_first(redis.scan_iter(match=pattern, count=1000), 5))
        where = f"the keys containing {api_key!r}"
        if not names:
            names = list(_first(redis.scan_iter(count=1000), 5))
            where = f"no key contains {api_key!r}; some of its keys"
        if not names:
            return " Redis holds no keys at all: the limiter does not count there."
        parts = []
        for name in sorted(names):
            kind = redis.type(name)
            value = redis.get(name) if kind == "string" else f"a {kind}"
            pttl = redis.pttl(name)
            expiry = (
                "no expiry (PTTL -1)"
                if pttl == -1
                else "gone"
                if pttl == -2
                else f"expires in {pttl / 1000:.2f} s"
            )
            parts.append(f"{name} = {value}, {expiry}")
        return f" In Redis, {where}: " + "; ".join(parts) + "."
    except Exception:  # noqa: BLE001 - a courtesy for the message; never in the check's way
        return ""


def _first(items: Iterator[str], count: int) -> Iterator[str]:
    for index, item in enumerate(items):
        if index >= count:
            return
        yield item


def expect_allowed(response: httpx.Response, number: int, what: str) -> None:
    """Request ``number`` of a fresh key must be allowed."""
    first = response.status_code == 429 and number == 1
    expect(
        response.status_code == 200,
        f"{what} should be allowed (200)."
        + (
            " A key that has never been used was refused on its very first request: does "
            "every key count on one shared counter, or did an old count survive?"
            if first
            else ""
        ),
        expected=200,
        actual=shown(response),
        hint=KEYS_HINT if first else None,
    )


# --- the checks ---------------------------------------------------------------------------


@recorded
@hint(*LIMIT_HINT)
def test_limit_and_retry_after(http: httpx.Client, rng: Any, redis: Any) -> None:
    """10 requests with one key are allowed; the 11th gets 429 problem+json with Retry-After"""
    key = fresh_key(rng)
    began = time.monotonic()
    for number in range(1, LIMIT + 1):
        expect_allowed(
            ask(http, key),
            number,
            f"Request {number} of {LIMIT} with a fresh API key "
            f"(X-API-Key: {key}; RATE_LIMIT={LIMIT}/{WINDOW}s)",
        )
    elapsed = time.monotonic() - began
    eleventh = ask(http, key)
    received = time.monotonic()
    expect(
        eleventh.status_code == 429,
        f"The 11th request with X-API-Key: {key}, {elapsed:.2f} s after the first, is over the "
        f"limit of {LIMIT} per {WINDOW} s: it should be refused with 429 Too Many Requests. "
        "(A window aligned to the clock, a key per now // 10, can let it through when the "
        "requests straddle a boundary: start each key's window at its first request.)"
        + (redis_view(redis, key) if eleventh.status_code != 429 else ""),
        expected=429,
        actual=shown(eleventh),
    )
    PASSED.add(REFUSED_ELEVENTH)
    expect_problem(eleventh, 429)
    retry_after = eleventh.headers.get("retry-after")
    expect(
        retry_after is not None,
        "A 429 should say when the client may try again: Retry-After, in seconds (RFC 6585 §4, "
        "RFC 9110 §10.2.3).",
        expected=f"Retry-After: an integer from 1 to {WINDOW}",
        actual=shown(eleventh),
    )
    assert retry_after is not None
    expect(
        RETRY_AFTER.fullmatch(retry_after.strip()) is not None and 1 <= int(retry_after) <= WINDOW,
        f"Retry-After should be a whole number of seconds from 1 to {WINDOW} (the window's "
        "length): HTTP allows a delay in whole seconds or an HTTP date, and this API pins "
        "seconds. A fraction (7.5) is neither form, and clients ignore it.",
        expected=f"Retry-After: an integer from 1 to {WINDOW}",
        actual=f"Retry-After: {retry_after}",
    )
    LIMITED["key"] = (key, received, int(retry_after))


@recorded
@hint(*REMAINING_HINT)
def test_remaining_header(http: httpx.Client, rng: Any) -> None:
    """X-RateLimit-Remaining counts down 9, 8, ..., 0 over the first 10 requests"""
    key = fresh_key(rng)
    answers = [ask(http, key) for _ in range(LIMIT)]
    for number, response in enumerate(answers, 1):
        expect_allowed(response, number, f"Request {number} of {LIMIT} with a fresh API key")
    seen = [remaining_of(response) for response in answers]
    wanted = [str(n) for n in range(LIMIT - 1, -1, -1)]
    off_by_one = seen == [str(n) for n in range(LIMIT, 0, -1)]
    expect(
        seen == wanted,
        f"Over the first {LIMIT} requests of a fresh key, X-RateLimit-Remaining should count "
        "the requests still allowed after each one: 9 after the first, 0 after the tenth."
        + (" Yours counts before the request: it says 10 when 9 are left." if off_by_one else ""),
        expected=", ".join(wanted),
        actual=", ".join(seen),
    )


@recorded
@hint(*KEYS_HINT)
def test_keys_independent(http: httpx.Client, rng: Any, redis: Any) -> None:
    """One API key over its limit leaves another key unaffected"""
    require_limiting("a key must be limited first")
    limited, other = fresh_key(rng), fresh_key(rng)
    for number in range(1, LIMIT + 1):
        expect_allowed(
            ask(http, limited), number, f"Request {number} of {LIMIT} with API key {limited}"
        )
    refused = ask(http, limited)
    expect(
        refused.status_code == 429,
        f"The 11th request with API key {limited} should get 429.",
        expected=429,
        actual=shown(refused),
        hint=LIMIT_HINT,
    )
    for number in range(1, rng.randint(3, 6) + 1):
        response = ask(http, other)
        expect(
            response.status_code == 200,
            f"Request {number} with another API key, {other}, while {limited} is over its "
            f"limit, should be allowed (200): each key has its own quota."
            + (redis_view(redis, other) if response.status_code != 200 else ""),
            expected=200,
            actual=shown(response),
        )
        expect(
            remaining_of(response) in (str(LIMIT - number), "(none)"),
            f"Request {number} with API key {other} should have {LIMIT - number} requests "
            f"left: its count must not include {limited}'s.",
            expected=f"X-RateLimit-Remaining: {LIMIT - number}",
            actual=shown(response),
        )
    still = ask(http, limited)
    expect(
        still.status_code == 429,
        f"API key {limited} is still over its limit in the same window: 429 again.",
        expected=429,
        actual=shown(still),
    )


@recorded
@hint(*SHARED_HINT)
def test_shared_across_replicas(stack: Any, rng: Any, redis: Any) -> None:
    """Requests alternating between two replicas share one count: the 11th overall gets 429"""
    require_limiting("one replica must limit a key first")
    urls = list(stack.app_urls)
    expect(
        len(urls) >= 2,
        f"This check needs two replicas of the app; bb started {len(urls)}.",
        expected=2,
        actual=len(urls),
    )
    key = fresh_key(rng)
    first = rng.randrange(2)
    order = [(first + index) % 2 for index in range(LIMIT + 1)]
    seen: list[str] = []
    with (
        capped_client(urls[0], trust_env=False) as one,
        capped_client(urls[1], trust_env=False) as two,
    ):
        clients = (one, two)
        for number, replica in enumerate(order, 1):
            response = ask(clients[replica], key)
            seen.append(
                f"#{number} replica {replica + 1}: {response.status_code} "
                f"(remaining {remaining_of(response)})"
            )
            if number <= LIMIT:
                expect(
                    response.status_code == 200,
                    f"Request {number} of {LIMIT}, alternating between the two replicas, "
                    "should be allowed.",
                    expected=200,
                    actual="; ".join(seen),
                )
            else:
                expect(
                    response.status_code == 429,
                    f"{LIMIT + 1} requests with API key {key}, alternating between the app's "
                    "two replicas: the 11th overall should get 429. Each replica must have "
                    "counted only the requests it served itself: a client behind a load "
                    "balancer gets the limit once per replica."
                    + (redis_view(redis, key) if response.status_code != 429 else ""),
                    expected=f"requests 1-{LIMIT}: 200, request {LIMIT + 1}: 429",
                    actual="; ".join(seen),
                )


@recorded
@hint(*ATOMIC_HINT)
def test_concurrent_requests(app_url: str, rng: Any, redis: Any) -> None:
    """50 requests at the same instant with a fresh key: exactly 10 get 200, 40 get 429"""
    require_limiting("the limit must hold one request at a time first")
    seen: list[str] = []
    for number in range(1, CONCURRENT_ROUNDS + 1):
        key = fresh_key(rng)
        calls = [Call("GET", PATH, headers={"X-API-Key": key}) for _ in range(CONCURRENT)]
        round_ = simultaneous(app_url, calls, timeout=CONCURRENT_TIMEOUT)
        expect(
            not round_.errors,
            f"Round {number}: all {CONCURRENT} requests should be answered within "
            f"{CONCURRENT_TIMEOUT:g} s.",
            expected=f"{CONCURRENT} answers",
            actual="; ".join(sorted(set(round_.errors))),
        )
        statuses = [status or 0 for status in round_.statuses]
        allowed, refused = statuses.count(200), statuses.count(429)
        others = sorted({status for status in statuses if status not in (200, 429)})
        seen.append(
            f"round {number}: {allowed} × 200, {refused} × 429"
            + (f", other statuses {others}" if others else "")
        )
        expect(
            allowed == LIMIT and refused == CONCURRENT - LIMIT,
            f"Round {number} of {CONCURRENT_ROUNDS}: {CONCURRENT} requests with one fresh API "
            f"key, sent at the same instant (they left {round_.spread * 1000:.1f} ms apart): "
            f"exactly {LIMIT} should be allowed and {CONCURRENT - LIMIT} refused."
            + (
                f" {allowed} got through: requests that read the count at the same time all "
                "saw room under the limit."
                if allowed > LIMIT
                else ""
            )
            + (redis_view(redis, key) if allowed != LIMIT else ""),
            expected=f"{LIMIT} × 200, {CONCURRENT - LIMIT} × 429 in every round",
            actual="; ".join(seen),
        )


@recorded
@hint(*RESET_HINT)
def test_window_resets(http: httpx.Client, redis: Any) -> None:
    """After waiting the 429's Retry-After, the same key is allowed again"""
    require("limit_and_retry_after", "it waits out that check's Retry-After")
    key, received, retry_after = LIMITED["key"]
    due = received + retry_after + RESET_GRACE
    time.sleep(max(due - time.monotonic(), 0.0))
    waited = time.monotonic() - received
    response = ask(http, key)
    held = redis_view(redis, key) if response.status_code != 200 else ""
    expect(
        response.status_code == 200,
        f"API key {key} got 429 with Retry-After: {retry_after}; {waited:.2f} s later the same "
        "key should be allowed again: its window is over."
        + held
        + (" A counter with no expiry never resets." if "no expiry" in held else ""),
        expected=200,
        actual=shown(response),
    )
    expect(
        remaining_of(response) in (str(LIMIT - 1), "(none)"),
        f"The first request of API key {key}'s new window should have {LIMIT - 1} requests "
        "left: the old window's count must be gone.",
        expected=f"X-RateLimit-Remaining: {LIMIT - 1}",
        actual=shown(response),
    )


def outage_load(stack: Any, rng: Any) -> list[LoadResult]:
    """OUTAGE_STREAMS streams of requests at once, spread over the replicas, each stream with a
    fresh key of its own."""
    urls = list(stack.app_urls)
    keys = [fresh_key(rng) for _ in range(OUTAGE_STREAMS)]
    with concurrent.futures.ThreadPoolExecutor(OUTAGE_STREAMS) as pool:
        streams = [
            pool.submit(
                open_loop,
                urls[index % len(urls)],
                [("GET", PATH, None)],
                rate=OUTAGE_RATE,
                count=OUTAGE_REQUESTS,
                timeout=OUTAGE_TIMEOUT,
                headers={"X-API-Key": key},
            )
            for index, key in enumerate(keys)
        ]
        return [stream.result() for stream in streams]


def judge_outage(results: list[LoadResult], how: str) -> None:
    samples = [sample for result in results for sample in result.samples]
    statuses: dict[str, int] = {}
    for sample in samples:
        label = str(sample.status) if sample.status is not None else f"no answer ({sample.error})"
        statuses[label] = statuses.get(label, 0) + 1
    # Every request counts, answered or not: one that timed out took at least OUTAGE_TIMEOUT.
    p95 = percentile([sample.latency for sample in samples], 95)
    summary = (
        f"{len(samples)} requests on both replicas: "
        + ", ".join(f"{n} × {label}" for label, n in sorted(statuses.items()))
        + f"; p95 {p95 * 1000:.0f} ms"
    )
    hung = sum(1 for sample in samples if sample.error == "timeout")
    expect(
        not hung,
        f"{how}, {hung} requests got no answer within {OUTAGE_TIMEOUT:g} s: they waited on "
        "Redis. A Redis call without a timeout waits as long as Redis does: give the client "
        "short connect and read timeouts, and each call a deadline (a socket timeout does not "
        "cover the DNS lookup of a Redis that is gone).",
        expected=f"every answer within {OUTAGE_P95:g} s",
        actual=summary,
        hint=OUTAGE_HINT,
    )
    server_errors = sum(n for label, n in statuses.items() if label.startswith("5"))
    expect(
        statuses.get("200") == len(samples),
        f"{how}, the API should keep serving: 200 for every request (this API fails open, "
        "unlimited, rather than go down with Redis)."
        + (f" {server_errors} were 5xx: losing Redis took the API down." if server_errors else ""),
        expected=f"{len(samples)} × 200",
        actual=summary,
        hint=OUTAGE_HINT,
    )
    expect(
        p95 < OUTAGE_P95,
        f"{how}, the API should still answer quickly: p95 under {OUTAGE_P95:g} s. Each request "
        "waited on Redis: give each Redis call a short deadline.",
        expected=f"p95 < {OUTAGE_P95 * 1000:.0f} ms",
        actual=summary,
        hint=OUTAGE_HINT,
    )


@recorded
@hint(*OUTAGE_HINT)
def test_redis_down(stack: Any, rng: Any, redis: Any) -> None:
    """While Redis hangs, and while it is stopped: every request 200, p95 under 1 s, no 5xx"""
    require_limiting("failing open is a policy of a limiter that works")
    with redis_hung(redis):
        hung = outage_load(stack, rng)
    with redis_stopped(stack):
        stopped = outage_load(stack, rng)
    # Judged once Redis is back: a failure must not leave it down for whatever runs next.
    judge_outage(
        hung,
        f"While Redis hung for {HANG_SECONDS:g} s (CLIENT PAUSE ALL: it accepted connections "
        "and answered nothing, as a Redis busy with one long command does)",
    )
    judge_outage(stopped, "While Redis was stopped")


@contextlib.contextmanager
def redis_hung(redis: Any) -> Iterator[None]:
    """Redis answers no command for HANG_SECONDS: CLIENT PAUSE ALL, which Redis itself ends
    (CLIENT UNPAUSE would wait in the same queue), so it cannot stay hung."""
    ends = time.monotonic() + HANG_SECONDS
    redis.client_pause(int(HANG_SECONDS * 1000), all=True)
    try:
        yield
    finally:
        time.sleep(max(ends - time.monotonic(), 0.0) + 0.05)


@contextlib.contextmanager
def redis_stopped(stack: Any) -> Iterator[None]:
    stack.stop("redis")
    try:
        yield
    finally:
        try:
            stack.start("redis")
        except Failure as exc:
            raise Failure(
                f"Redis did not come back after the grader stopped it: {exc.message}"
            ) from exc
