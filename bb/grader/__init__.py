"""The vocabulary grader suites are written in.

A grader is a pytest module in a pack's ``graders/<suite>/``. Each test function is one check
the learner sees: its docstring's first line is the check's description, and a failure's
message is what the learner reads, so write it for them: what was expected, what arrived.

    from bb.grader import expect_status, hint

    @hint("Creates return 201 with a Location header.",
          "FastAPI answers 200 unless the route says status_code=201.")
    def test_create_returns_201(http):
        '''POST /posts creates a post'''
        response = http.post("/posts", json={...})
        expect_status(response, 201)

Fixtures (from bb's pytest plugin): ``stack`` (the running containers), ``app_url``, ``http``
(an ``httpx.Client`` on the app), ``db`` (a superuser psycopg connection to the exercise's
Postgres, autocommit, application_name ``bb-grader``), ``redis`` (a redis-py client of the
service named ``redis``, ``decode_responses=True``), ``rng`` (a ``random.Random`` seeded per
grade).

Hints escalate: ``@hint("a nudge", "deeper", ...)`` gives a check's hint by levels, shortest
first. The first failure of a check shows the first level; each later grade in which it fails
again shows the next (bb keeps what the learner has seen). A failure's own ``hint=`` (one text
or its levels) replaces the check's for that failure.

The stack (``bb.grader.plugin.Stack``):
    ``stack.dsn(service)``, ``stack.port(service)``, ``stack.url(service)``,
    ``stack.redis_url(service)``, ``stack.logs(name, tail)``, ``stack.app_urls`` (one URL per
    copy of the app under ``app.replicas``; their containers are ``app``, ``app-2``, ...),
    ``stack.environment`` (the app's environment, e.g. its JWT_SECRET);
    ``stack.restart(name)``, ``stack.stop(name, timeout=10)``, ``stack.start(name)`` (restart
    and start block until the container is ready again; ports never change; a tmpfs-backed
    database comes back empty), ``stack.pause(name)``/``stack.unpause(name)`` (frozen:
    unreachable, data and connections kept);
    ``stack.run(["alembic", "downgrade", "base"], timeout=60)`` → ``RunResult(exit_code,
    output)``: a one-off container of the learner's app image, on the grade's network (it
    reaches ``db``, ``app``), with the app's environment; removed afterwards.

Vocabulary:
    ``expect``, ``expect_status``, ``expect_problem``, ``json_body``, ``describe``, ``hint``,
    ``wait_until``, ``burst`` (closed-loop: N requests at once, to provoke races).

Together (``bb.grader.concurrency``): ``simultaneous(app_url, [Call(method, path, json=,
    headers=)] or [(method, path, json[, headers])], timeout=10)`` → ``Round``: one connection
    per call, all opened first, then every request released at once by a barrier (a race
    between a few exact requests, each with its own headers); ``.outcomes`` (``Outcome``s in
    call order: an ``httpx.Response`` or an error, ``started`` when its bytes left,
    ``finished`` when its answer was whole), ``.statuses``, ``.spread``, ``.errors``. At most
    100 calls.

Load (``bb.grader.load``): ``open_loop(app_url, [(method, path, json)] or f(i), rate=200,
    duration=5, count=None, timeout=5, max_in_flight=256)`` → ``LoadResult``: ``samples``
    (scheduled, sent, finished, status, error), latency counted from each request's due time
    (no coordinated omission), ``p50``/``p95``/``p99``/``percentile(q)``, ``statuses``,
    ``errors`` (timeout, connect, connection, protocol, body-too-large, cancelled),
    ``error_rate``, ``throughput``, ``summary()``. Bounded: 200,000 requests, 300 s of schedule;
    each request ends at ``timeout``. One core sends a few thousand requests/s
    (``benchmarks/load_bench.py``).

Raw HTTP (``bb.grader.raw_http``): ``raw_connection(app_url)`` → ``RawHTTP``: ``send(bytes)``,
    ``send_slowly(bytes, chunk_size, delay)``, ``send_chunks(chunks, delay)``,
    ``request(method, path, headers=, body=)``, ``read_response(timeout=)`` → ``RawResponse``
    (version, status, reason, headers, body; Content-Length, chunked or until close), or
    ``read_response(head=True)`` then ``read_body(head)`` to judge a head before its framing;
    ``closed_by_peer(timeout)``; ``received`` and ``peer_closed`` (what a failed read saw);
    ``open_connections(app_url, n)`` opens n before any sends;
    ``build_request(...)``. Timeouts, early closes, oversized or malformed responses raise
    ``RawHTTPError`` (a ``Failure``).

Auth (``bb.grader.auth``, also via ``bb.grader``): ``app_secret(stack)`` (the app's
    JWT_SECRET), ``mint_token(secret, claims, ttl=300)`` (HS256, PyJWT), ``forged_tokens(secret,
    claims)`` → {what is wrong: token} (a flipped signature byte, ``alg: none``, another secret,
    expired), ``token_parts(token)`` → (header, claims) unverified, ``bearer(token)``;
    ``compare_timing(send_a, send_b, rounds=20)`` → ``TimingComparison`` (interleaved A,B/B,A;
    ``median_a``, ``median_b``, ``ratio`` = median b / median a, ``summary()``).

Mock origin (``bb.grader.origin``, also via ``bb.grader``): ``MockOrigin(stack.url("origin"))``
    steers a ``mock-origin`` service: ``reset()``, ``hits(path=None)``, ``set_body(path, {...})``,
    ``fail(status=500)``, ``recover()``, ``latency(ms)``.

Postgres (``bb.grader.pg``; ``Postgres`` and the functions also via ``bb.grader``):
    ``with Postgres.of(stack) as pg:`` connects as the grader's own role, so its queries never
    count as the app's. ``pg.count_statements()`` (pg_stat_statements, reset first; ``.calls``
    and ``.buffers`` without BEGIN/COMMIT/SET, ``.matching(regex)``, ``.calls_matching(regex)``,
    ``.summary()``),
    ``pg.capture_plans()`` (auto_explain JSON plans of the app's statements from the db log:
    ``.plans``, ``.matching(regex)``, ``.seq_scans(table)``, ``.index_names()``; each
    ``Plan`` has ``nodes()``, ``node_types()``, ``scans(table)``, ``index_names()``),
    ``pg.capture_log()`` (the server's log lines of the block: ``parse_lock_waits(text,
    pid=)`` finds the waits a session with ``log_lock_waits`` logged), ``pg.indexes(table)``
    (pg_index: ``Index`` with columns, method, opclasses, column types, ``prefix_of``),
    ``pg.app_connections()`` (pg_stat_activity), ``pg.injected_trigger(name, table=,
    before="INSERT", body=)`` and ``slow_writes(conn, table, seconds)`` (faults, removed on
    exit), ``pg.insert_series(table, n, {"col": "sql of i"})``, ``pg.copy_rows(table, cols,
    rows)``, ``pg.analyze(table)``, ``pg.rows(sql)``/``pg.scalar(sql)`` (ground truth),
    ``pg.ensure_extension(name)``, and ``expect_same_rows(answer, truth, what=, key=)``.

Bodies: a learner's app may answer with a body of any size. ``http``, :func:`burst`,
:func:`capped_client` and :func:`capped_session` (a ``requests.Session``, for libraries such as
schemathesis) read at most :data:`MAX_BODY_BYTES` of one body; beyond that they stop reading
and the check fails with :class:`BodyTooLarge`. Talk to the app through them only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx
import pytest
import requests
import requests.adapters

_T = TypeVar("_T")

#: The most of one response body (as decoded) that bb reads from a learner's app.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Compressed bodies are decoded in steps of at most this many bytes, so that one step of a
#: "zip bomb" decodes to at most about 1000 times as much (zlib's ratio), never gigabytes.
_RAW_STEP = 8 * 1024
#: Content encodings whose decoding can be bounded step by step (zlib's).
_BOUNDED_ENCODINGS = {"identity", "gzip", "x-gzip", "deflate"}


#: A hint: one text, or its levels, shortest first (see :func:`hint`).
HintText = str | Sequence[str]


def hint_levels(*texts: HintText | None) -> tuple[str, ...]:
    """The levels of a hint given as texts and sequences of texts, in order, empty ones left
    out."""
    levels: list[str] = []
    for text in texts:
        if text is None:
            continue
        for level in (text,) if isinstance(text, str) else text:
            if not isinstance(level, str):
                raise TypeError(f"a hint level must be a string, not {type(level).__name__}")
            if level.strip():
                levels.append(level)
    return tuple(levels)


class Failure(AssertionError):
    """A check failed. ``message`` is written for the learner; ``hint`` says what to look at:
    one text, or several levels, shortest first (they replace the check's own hint)."""

    def __init__(
        self,
        message: str,
        *,
        expected: object = None,
        actual: object = None,
        hint: HintText | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expected = None if expected is None else str(expected)
        self.actual = None if actual is None else str(actual)
        #: Every level of the hint; ``hint`` is the first.
        self.hints = hint_levels(hint)

    @property
    def hint(self) -> str | None:
        return self.hints[0] if self.hints else None

    @hint.setter
    def hint(self, value: HintText | None) -> None:
        # Graders may replace a caught failure's hint before raising it again.
        self.hints = hint_levels(value)


class BodyTooLarge(Failure):
    """The app answered with a body larger than bb reads (:data:`MAX_BODY_BYTES`)."""

    def __init__(self, method: str, path: str, limit: int = MAX_BODY_BYTES) -> None:
        size = _size(limit)
        super().__init__(
            f"{method} {path}: the response body exceeded {size}; bb stopped reading it.",
            expected=f"a response body of at most {size}",
            actual=f"more than {size}",
        )


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"


def hint(*levels: HintText) -> pytest.MarkDecorator:
    """Attach the hint shown when this check fails (a failure's own hint wins).

    Several levels escalate: ``@hint("short", "deeper", "the way to do it")``. A check's first
    failure shows the first; each later grade it fails again shows the next, and
    ``bb hint --next CHECK`` reveals the next on request. A sequence counts as its levels, so
    ``@hint(LEVELS)`` and ``@hint(*LEVELS)`` are the same.
    """
    flat = hint_levels(*levels)
    if not flat:
        raise TypeError("hint() needs at least one non-empty text")
    return pytest.mark.bb_hint(*flat)


def expect(
    condition: bool,
    message: str,
    *,
    expected: object = None,
    actual: object = None,
    hint: HintText | None = None,
) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Failure(message, expected=expected, actual=actual, hint=hint)


# --- reading the app's answers, bounded ------------------------------------------------------


class _CappedResponse(httpx.Response):
    """A response whose decoded body stops at ``_limit`` bytes (a zip bomb stops there too)."""

    _limit: int = MAX_BODY_BYTES

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(self.request.method, self.request.url.path, self._limit)

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        total = 0
        for chunk in super().iter_bytes(chunk_size):
            total += len(chunk)
            if total > self._limit:
                raise self._too_large()
            yield chunk

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in super().aiter_bytes(chunk_size):
            total += len(chunk)
            if total > self._limit:
                raise self._too_large()
            yield chunk


def _steps(chunk: bytes) -> Iterator[bytes]:
    for start in range(0, len(chunk), _RAW_STEP):
        yield chunk[start : start + _RAW_STEP]


class _CappedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, limit: int) -> None:
        self.inner, self.request, self.limit = inner, request, limit

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        for chunk in self.inner:
            total += len(chunk)
            if total > self.limit:
                raise BodyTooLarge(self.request.method, self.request.url.path, self.limit)
            yield from _steps(chunk)

    def close(self) -> None:
        self.inner.close()


class _AsyncCappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request, limit: int) -> None:
        self.inner, self.request, self.limit = inner, request, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self.inner:
            total += len(chunk)
            if total > self.limit:
                raise BodyTooLarge(self.request.method, self.request.url.path, self.limit)
            for step in _steps(chunk):
                yield step

    async def aclose(self) -> None:
        await self.inner.aclose()


def _ask_bounded_encodings(request: httpx.Request) -> None:
    # httpx offers brotli and zstd when their packages are installed; their decoding cannot
    # be bounded step by step, so bb does not ask for them.
    offered = request.headers.get("accept-encoding")
    if offered is not None:
        kept = [c for c in offered.split(",") if c.strip().lower() not in ("br", "zstd")]
        request.headers["accept-encoding"] = ",".join(kept).strip() or "identity"


def _unbounded_encoding(response: httpx.Response) -> str | None:
    codings = str(response.headers.get("content-encoding", ""))
    for coding in codings.split(","):
        if coding.strip() and coding.strip().lower() not in _BOUNDED_ENCODINGS:
            return coding.strip()
    return None


def _encoding_failure(request: httpx.Request, coding: str) -> Failure:
    return Failure(
        f"{request.method} {request.url.path}: the response is encoded as {coding!r}, "
        "which bb does not read.",
        expected="Content-Encoding gzip or deflate, or none",
        actual=f"Content-Encoding: {coding}",
    )


def _note(request: httpx.Request) -> None:
    """Remember the request, for a command that reproduces the check if it fails."""
    from bb.grader import repro

    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed body: not replayable from here
        body = b""
    repro.note_request(
        request.method, str(request.url), [(k, v) for k, v in request.headers.items()], body
    )


class CappedTransport(httpx.BaseTransport):
    """An httpx transport that reads at most ``limit`` bytes of each response body, raw and
    decoded; beyond them it stops and raises :class:`BodyTooLarge`."""

    def __init__(
        self, inner: httpx.BaseTransport | None = None, *, limit: int = MAX_BODY_BYTES
    ) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.limit = limit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _ask_bounded_encodings(request)
        _note(request)
        response = self.inner.handle_request(request)
        if coding := _unbounded_encoding(response):
            response.close()
            raise _encoding_failure(request, coding)
        assert isinstance(response.stream, httpx.SyncByteStream)
        capped = _CappedResponse(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, request, self.limit),
            extensions=response.extensions,
        )
        capped._limit = self.limit
        return capped

    def close(self) -> None:
        self.inner.close()


class AsyncCappedTransport(httpx.AsyncBaseTransport):
    """:class:`CappedTransport` for ``httpx.AsyncClient``."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport | None = None, *, limit: int = MAX_BODY_BYTES
    ) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _ask_bounded_encodings(request)
        _note(request)
        response = await self.inner.handle_async_request(request)
        if coding := _unbounded_encoding(response):
            await response.aclose()
            raise _encoding_failure(request, coding)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        capped = _CappedResponse(
            status_code=response.status_code,
            headers=response.headers,
            stream=_AsyncCappedStream(response.stream, request, self.limit),
            extensions=response.extensions,
        )
        capped._limit = self.limit
        return capped

    async def aclose(self) -> None:
        await self.inner.aclose()


def capped_client(base_url: str, *, timeout: float = 10.0, **options: Any) -> httpx.Client:
    """An ``httpx.Client`` on ``base_url`` that reads at most :data:`MAX_BODY_BYTES` of a
    body (what the ``http`` fixture is); ``options`` go to ``httpx.Client``."""
    return httpx.Client(base_url=base_url, timeout=timeout, transport=CappedTransport(), **options)


class CappedAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` adapter that reads at most ``limit`` bytes of a body (as decoded), then
    stops and raises :class:`BodyTooLarge`. Bodies are read at once, even with ``stream=True``
    (``iter_content`` and ``content`` still work; ``raw`` is spent)."""

    def __init__(self, *args: Any, limit: int = MAX_BODY_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        response = super().send(request, stream=True, **kwargs)
        chunks: list[bytes] = []
        total = 0
        try:
            # urllib3 decodes at most one chunk's worth per read, so a zip bomb stops here too.
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > self.limit:
                    path = urllib.parse.urlsplit(request.url or "").path or "/"
                    raise BodyTooLarge(str(request.method), path, self.limit)
                chunks.append(chunk)
        except BaseException:
            response.close()
            raise
        # What requests itself stores once it has read a body.
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]
        return response


def capped_session(*, limit: int = MAX_BODY_BYTES) -> requests.Session:
    """A ``requests.Session`` that reads at most ``limit`` bytes of a body (see
    :class:`CappedAdapter`): for libraries that take a session, such as schemathesis."""
    session = requests.Session()
    adapter = CappedAdapter(limit=limit)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def describe(response: httpx.Response, limit: int = 300) -> str:
    """A one-line account of a response, for failure messages."""
    body = response.text
    if len(body) > limit:
        body = body[:limit] + "…"
    request = response.request
    return f"{request.method} {request.url.path} → {response.status_code} {body}".rstrip()


def expect_status(response: httpx.Response, status: int, *, hint: HintText | None = None) -> None:
    """Fail unless ``response`` has exactly ``status``."""
    request = response.request
    expect(
        response.status_code == status,
        f"{request.method} {request.url.path} should answer {status}, not {response.status_code}.",
        expected=status,
        actual=describe(response),
        hint=hint,
    )


def expect_problem(
    response: httpx.Response,
    status: int,
    *,
    field: str | None = None,
    hint: HintText | None = None,
) -> dict[str, Any]:
    """Fail unless ``response`` is an RFC 9457 problem document with ``status``.

    With ``field``, the problem's ``errors[].field`` must name it.
    """
    expect_status(response, status, hint=hint)
    request = response.request
    where = f"{request.method} {request.url.path}"
    content_type = response.headers.get("content-type", "")
    expect(
        content_type.split(";")[0].strip() == "application/problem+json",
        f"{where} should answer with Content-Type application/problem+json.",
        expected="application/problem+json",
        actual=content_type or "(no Content-Type)",
        hint=hint,
    )
    body = json_body(response)
    expect(
        isinstance(body, dict) and body.get("status") == status,
        f'{where}: the problem body should carry "status": {status}.',
        expected=status,
        actual=describe(response),
        hint=hint,
    )
    if field is not None:
        fields = [e.get("field") for e in body.get("errors") or [] if isinstance(e, dict)]
        expect(
            field in fields,
            f"{where}: errors[].field should name {field!r}.",
            expected=field,
            actual=fields,
            hint=hint,
        )
    return dict(body)


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or a failure saying the body was not JSON."""
    try:
        return response.json()
    except ValueError:
        raise Failure(
            f"{response.request.method} {response.request.url.path} should answer with JSON.",
            expected="a JSON body",
            actual=describe(response),
        ) from None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One request sent by :func:`burst`: its response, or the error that replaced it."""

    response: httpx.Response | None
    error: str | None
    started: float
    finished: float

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code


def burst(
    base_url: str,
    requests: Sequence[tuple[str, str, Any]],
    *,
    concurrency: int,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> list[Outcome]:
    """Send ``(method, path, json)`` requests with up to ``concurrency`` in flight at once.

    All connections are opened and every worker starts together, so the requests really
    overlap: this is how races are provoked. Results come back in request order. ``headers``
    go with every request (an ``Authorization``, say).
    """

    async def run() -> list[Outcome]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        results: list[Outcome | None] = [None] * len(requests)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(requests)):
            queue.put_nowait(index)
        start = asyncio.Event()

        # Each response is capped; together they hold at most concurrency x MAX_BODY_BYTES.
        transport = AsyncCappedTransport(httpx.AsyncHTTPTransport(limits=limits))
        async with httpx.AsyncClient(
            base_url=base_url, timeout=timeout, transport=transport, headers=headers
        ) as client:

            async def worker() -> None:
                await start.wait()
                while not queue.empty():
                    index = queue.get_nowait()
                    method, path, body = requests[index]
                    began = time.perf_counter()
                    try:
                        response = await client.request(method, path, json=body)
                        results[index] = Outcome(response, None, began, time.perf_counter())
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                        results[index] = Outcome(None, error, began, time.perf_counter())

            workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
            await asyncio.sleep(0)
            start.set()
            await asyncio.gather(*workers)
        return [r for r in results if r is not None]

    return asyncio.run(run())


def wait_until(
    probe: Callable[[], _T | None], *, timeout: float, interval: float = 0.05, what: str
) -> _T:
    """Poll ``probe`` until it returns something other than None; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"Gave up after {timeout:g} s waiting for {what}.")
        time.sleep(interval)


# Grader tools that live in modules of their own, re-exported here for one import line.
from bb.grader.load import LoadResult, Sample, open_loop, percentile  # noqa: E402

#: Names of tool modules also reachable from here, imported on first use: bb.grader.raw_http
#: builds on Failure above (an import here would be circular), psycopg is heavy; bb.grader.auth
#: (JWTs, timing comparisons) is for the auth exercises only.
_LAZY = {
    "bb.grader.raw_http": frozenset(
        {"RawHTTP", "RawHTTPError", "RawResponse", "build_request", "open_connections",
         "raw_connection"}
    ),
    "bb.grader.concurrency": frozenset({"Call", "Round", "simultaneous"}),
    "bb.grader.origin": frozenset({"MockOrigin"}),
    "bb.grader.auth": frozenset(
        {"TimingComparison", "app_secret", "bearer", "compare_timing", "forged_tokens",
         "mint_token", "token_parts"}
    ),
    "bb.grader.pg": frozenset(
        {"Postgres", "Plan", "Index", "LockWait", "expect_same_rows", "injected_trigger",
         "slow_writes", "insert_series", "copy_rows", "parse_lock_waits"}
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    import importlib

    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'bb.grader' has no attribute {name!r}")


__all__ = [
    "Failure",
    "HintText",
    "LoadResult",
    "Outcome",
    "Sample",
    "burst",
    "describe",
    "expect",
    "expect_problem",
    "expect_status",
    "hint",
    "hint_levels",
    "json_body",
    "open_loop",
    "percentile",
    "wait_until",
]
