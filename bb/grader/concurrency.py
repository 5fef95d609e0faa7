"""Requests that start together: N connections opened first, then every request released at
once by a barrier, each answer returned with its timing.

:func:`bb.grader.burst` keeps up to N requests in flight over a pool of connections, opened as
its workers need them: right for hundreds of requests. A race between *two* or *five* exact
requests needs more: each on its own connection, every connection already open (no TCP
handshake staggers them), and all the request bytes sent in the same instant, with their own
headers (``If-Match``, ``Authorization``). That is :func:`simultaneous`:

    from bb.grader import Call, simultaneous

    round_ = simultaneous(app_url, [
        Call("PUT", f"/articles/{id}", json=first, headers={"If-Match": etag}),
        Call("PUT", f"/articles/{id}", json=second, headers={"If-Match": etag}),
    ])
    round_.statuses        # [200, 412], in the order of the calls
    round_.spread          # seconds between the first and the last request leaving

Each :class:`~bb.grader.Outcome` holds an ``httpx.Response`` (so ``describe``, ``json_body``
and ``expect_problem`` work on it) or the error that replaced it; ``started`` is when its bytes
were sent, ``finished`` when its whole answer had arrived. Bounded: at most
:data:`MAX_CALLS` requests, each answer read up to ``max_body_bytes``, each within ``timeout``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json as jsonlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bb.grader import MAX_BODY_BYTES, Outcome
from bb.grader.raw_http import RawHTTP, RawHTTPError, RawResponse, build_request, open_connections

#: The most requests one :func:`simultaneous` sends (one thread and one connection each).
MAX_CALLS = 100


@dataclasses.dataclass(frozen=True)
class Call:
    """One request of a :func:`simultaneous` round. ``json`` becomes the body (with its
    Content-Type); ``content`` is sent as it is when there is no ``json``."""

    method: str
    path: str
    json: Any = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    content: bytes = b""

    def encoded(self) -> tuple[dict[str, str], bytes]:
        headers = dict(self.headers)
        if self.json is None:
            return headers, self.content
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return headers, jsonlib.dumps(self.json).encode()


@dataclasses.dataclass(frozen=True)
class Round:
    """What one :func:`simultaneous` round saw, outcomes in the order of the calls."""

    outcomes: list[Outcome]
    #: perf_counter() when the barrier let every request go (all connections were open).
    released: float

    @property
    def statuses(self) -> list[int | None]:
        return [outcome.status for outcome in self.outcomes]

    @property
    def spread(self) -> float:
        """Seconds between the first and the last request leaving: how together they were."""
        starts = [outcome.started for outcome in self.outcomes]
        return max(starts) - min(starts) if starts else 0.0

    @property
    def errors(self) -> list[str]:
        return [outcome.error for outcome in self.outcomes if outcome.error is not None]


def _as_call(call: Call | tuple[Any, ...]) -> Call:
    if isinstance(call, Call):
        return call
    if len(call) == 3:
        return Call(call[0], call[1], json=call[2])
    if len(call) == 4:
        return Call(call[0], call[1], json=call[2], headers=call[3] or {})
    raise ValueError(f"a call is Call(...) or (method, path, json[, headers]), not {call!r}")


def _response(base_url: str, call: Call, raw: RawResponse, body: bytes) -> httpx.Response:
    headers, content = call.encoded()
    request = httpx.Request(call.method, base_url.rstrip("/") + call.path, headers=headers,
                            content=content)  # fmt: skip
    # A stream (not content=) keeps the headers exactly as the app sent them: httpx would add
    # a Content-Length of its own to a 304 that had none.
    response = httpx.Response(raw.status, headers=list(raw.headers),
                              stream=httpx.ByteStream(body), request=request)  # fmt: skip
    response.read()
    return response


def simultaneous(
    base_url: str,
    calls: Sequence[Call | tuple[Any, ...]],
    *,
    timeout: float = 10.0,
    connect_timeout: float = 5.0,
    max_body_bytes: int = 1 << 20,
) -> Round:
    """Open one connection per call, then send every call at the same instant.

    All connections are open before any request leaves; a barrier then releases one thread
    per connection, each sending its whole request in one write and reading its answer (the
    final one, after any 1xx) within ``timeout`` seconds. A timeout, a close or a malformed
    answer becomes that outcome's ``error``; a connection that cannot be opened fails the
    check (:class:`~bb.grader.raw_http.RawHTTPError`) before anything is sent.
    """
    prepared = [_as_call(call) for call in calls]
    if not 1 <= len(prepared) <= MAX_CALLS:
        raise ValueError(f"give 1 to {MAX_CALLS} calls, not {len(prepared)}")
    if not 0 < max_body_bytes <= MAX_BODY_BYTES:
        raise ValueError(f"max_body_bytes must be in [1, {MAX_BODY_BYTES}]")
    connections = open_connections(base_url, len(prepared), timeout=connect_timeout)
    for conn in connections:
        conn.max_bytes = max_body_bytes
    payloads = []
    for conn, call in zip(connections, prepared, strict=True):
        headers, body = call.encoded()
        payloads.append(build_request(call.method, call.path, host=f"{conn.host}:{conn.port}",
                                      headers=headers, body=body))  # fmt: skip
    results: list[Outcome | None] = [None] * len(prepared)
    gate = threading.Barrier(len(prepared) + 1)

    def run(index: int, conn: RawHTTP, call: Call, payload: bytes) -> None:
        try:
            gate.wait(timeout=connect_timeout + timeout)
        except threading.BrokenBarrierError:
            now = time.perf_counter()
            results[index] = Outcome(None, "never released (the barrier broke)", now, now)
            return
        started = time.perf_counter()
        try:
            conn.send(payload)
            deadline = started + timeout
            raw = conn.read_response(timeout=timeout, head=call.method == "HEAD")
            while 100 <= raw.status < 200:
                raw = conn.read_response(timeout=max(deadline - time.perf_counter(), 0.001),
                                         head=call.method == "HEAD")  # fmt: skip
            finished = time.perf_counter()
            results[index] = Outcome(_response(base_url, call, raw, raw.body), None, started,
                                     finished)  # fmt: skip
        except RawHTTPError as exc:
            results[index] = Outcome(None, exc.message, started, time.perf_counter())

    threads = [
        threading.Thread(
            target=run, args=(index, conn, call, payload), daemon=True, name=f"simultaneous-{index}"
        )  # fmt: skip
        for index, (conn, call, payload) in enumerate(
            zip(connections, prepared, payloads, strict=True)
        )
    ]
    try:
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=connect_timeout + timeout)
        released = time.perf_counter()
        for thread in threads:
            # Each thread stops reading at its own deadline; this is only a backstop.
            thread.join(timeout=max(released + timeout + 1.0 - time.perf_counter(), 0.0))
    finally:
        gate.abort()
        for conn in connections:
            conn.close()
    outcomes = [
        result
        if result is not None
        else Outcome(None, "no answer before the deadline", released, time.perf_counter())
        for result in results
    ]
    return Round(outcomes, released)
