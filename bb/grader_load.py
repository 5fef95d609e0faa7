"""An open-loop load generator for graders: requests leave on a fixed schedule, whatever the app
does, and each latency is counted from the moment its request was *due*.

A closed loop (N workers, each sending its next request when the last one answered) slows down
with a slow server and so hides the slowness: that is coordinated omission. Here request ``i``
is due at ``i / rate`` seconds after the start; if the app falls behind, requests queue (up to
``max_in_flight`` on the wire) and their wait counts in their latency.

    result = open_loop(app_url, [("GET", "/posts?limit=10", None)], rate=200, duration=5,
                       timeout=5, max_in_flight=200)
    expect(result.p99 < 0.25, f"p99 was {result.p99 * 1000:.0f} ms", actual=result.summary())

Every run is bounded: at most :data:`MAX_REQUESTS` requests, :data:`MAX_DURATION` seconds of
schedule, each request ended after ``timeout`` seconds, bodies read up to ``body_limit`` bytes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import httpx

#: One request: method, path (joined to the base URL) and a JSON body (None for no body).
RequestSpec = tuple[str, str, Any]

MAX_REQUESTS = 200_000
MAX_DURATION = 300.0
MAX_RATE = 20_000.0


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One request of a run. Times are seconds since the run's start (its first due time)."""

    index: int
    method: str
    path: str
    #: When the request was due to leave.
    scheduled: float
    #: When it was handed to the HTTP client (None: it never left, the run was out of time).
    sent: float | None
    #: When its response was read to the end, or it failed.
    finished: float
    status: int | None
    #: None, or what went wrong: timeout, connect, connection, protocol, body-too-large,
    #: cancelled (still waiting when the run's time was up), or another httpx error's name.
    error: str | None
    detail: str = ""
    #: The response body (only with ``keep_bodies``; at most ``body_limit`` bytes).
    body: bytes = b""

    @property
    def latency(self) -> float:
        """Seconds from when the request was due until it ended (queueing included)."""
        return self.finished - self.scheduled

    @property
    def send_lag(self) -> float | None:
        """How late the request left: the generator's own scheduling error plus any wait for
        a free slot under ``max_in_flight``."""
        return None if self.sent is None else self.sent - self.scheduled

    @property
    def ok(self) -> bool:
        """A response arrived, with a status below 400."""
        return self.error is None and self.status is not None and self.status < 400


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; ``inf`` when empty,
    so a run without responses never meets a latency target."""
    if not 0 < q <= 100:
        raise ValueError("q is a percentage in (0, 100]")
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """Every sample of a run, and the statistics graders compare against their targets."""

    samples: tuple[Sample, ...]
    rate: float
    #: Seconds from the first due time to the end of the last request.
    elapsed: float

    def latencies(self, *, include_errors: bool = False) -> list[float]:
        """Latencies (seconds) of the requests that got a response (any status); with
        ``include_errors``, failed requests too, at the time they failed."""
        return [
            s.latency
            for s in self.samples
            if (s.status is not None and s.error is None) or (include_errors and s.sent is not None)
        ]

    def percentile(self, q: float, *, include_errors: bool = False) -> float:
        return percentile(self.latencies(include_errors=include_errors), q)

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def max_latency(self) -> float:
        return max(self.latencies(), default=math.inf)

    @property
    def statuses(self) -> collections.Counter[int]:
        return collections.Counter(s.status for s in self.samples if s.status is not None)

    @property
    def errors(self) -> collections.Counter[str]:
        """How many requests failed without a response, by kind of error."""
        return collections.Counter(s.error for s in self.samples if s.error is not None)

    @property
    def ok_count(self) -> int:
        return sum(1 for s in self.samples if s.ok)

    @property
    def error_rate(self) -> float:
        """The share of requests that did not end with a status below 400."""
        return 1 - self.ok_count / len(self.samples) if self.samples else 0.0

    @property
    def throughput(self) -> float:
        """Responses per second over the run."""
        answered = sum(1 for s in self.samples if s.status is not None)
        return answered / self.elapsed if self.elapsed > 0 else 0.0

    def send_lag_percentile(self, q: float) -> float:
        return percentile([s.send_lag for s in self.samples if s.send_lag is not None], q)

    def summary(self) -> str:
        """One line for failure messages."""

        def ms(value: float) -> str:
            return "—" if math.isinf(value) else f"{value * 1000:.1f} ms"

        statuses = ", ".join(f"{k}×{v}" for k, v in sorted(self.statuses.items())) or "none"
        errors = ", ".join(f"{k}×{v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"{len(self.samples)} requests at {self.rate:g}/s in {self.elapsed:.1f} s: "
            f"p50 {ms(self.p50)}, p95 {ms(self.p95)}, p99 {ms(self.p99)}, "
            f"max {ms(self.max_latency)}; statuses {statuses}; errors {errors}"
        )


def open_loop(
    base_url: str,
    requests: Sequence[RequestSpec] | Callable[[int], RequestSpec],
    *,
    rate: float,
    duration: float | None = None,
    count: int | None = None,
    timeout: float = 5.0,
    max_in_flight: int = 256,
    headers: dict[str, str] | None = None,
    body_limit: int = 1 << 16,
    keep_bodies: bool = False,
) -> LoadResult:
    """Send requests at ``rate`` per second, open-loop, for ``duration`` seconds and/or
    ``count`` requests (whichever ends first), and return every sample.

    Args:
        requests: the requests to send, cycled in order; or a function of the request's index
            returning one (to vary ids and bodies).
        timeout: the most one request may take, from leaving to its last byte.
        max_in_flight: connections (and requests on the wire) at most; a request due while all
            are busy waits for one, and that wait counts in its latency.
        body_limit: read at most this many bytes of a body; a longer one ends the request with
            the error ``body-too-large``.
        keep_bodies: keep each body in its sample (memory: up to count × body_limit).
    """
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate must be in (0, {MAX_RATE:g}] requests per second")
    if duration is None and count is None:
        raise ValueError("give duration, count or both: a load run must be bounded")
    if duration is not None and not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be in (0, {MAX_DURATION:g}] seconds")
    if count is not None and not 0 < count <= MAX_REQUESTS:
        raise ValueError(f"count must be in [1, {MAX_REQUESTS}]")
    if timeout <= 0 or max_in_flight < 1:
        raise ValueError("timeout must be positive and max_in_flight at least 1")
    planned = min(
        count if count is not None else MAX_REQUESTS,
        math.floor(rate * duration) if duration is not None else MAX_REQUESTS,
        MAX_REQUESTS,
    )
    if callable(requests):
        choose: Callable[[int], RequestSpec] = requests
    else:
        if not requests:
            raise ValueError("requests is empty")
        pool = list(requests)
        choose = lambda i: pool[i % len(pool)]  # noqa: E731
    return asyncio.run(
        _run(
            base_url,
            choose,
            rate=rate,
            planned=max(planned, 1),
            timeout=timeout,
            max_in_flight=max_in_flight,
            headers=headers or {},
            body_limit=body_limit,
            keep_bodies=keep_bodies,
        )
    )


async def _run(
    base_url: str,
    choose: Callable[[int], RequestSpec],
    *,
    rate: float,
    planned: int,
    timeout: float,
    max_in_flight: int,
    headers: dict[str, str],
    body_limit: int,
    keep_bodies: bool,
) -> LoadResult:
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(max_in_flight)
    samples: list[Sample | None] = [None] * planned
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    # The client's own timeouts are a backstop; each request's whole life is bounded below.
    client_timeout = httpx.Timeout(timeout, pool=None)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=client_timeout, limits=limits
    ) as client:
        start = loop.time() + 0.005  # a little lead, so request 0 is not late by the set-up

        async def one(index: int, due: float) -> None:
            method, path, body = choose(index)
            sent: float | None = None
            status: int | None = None
            error: str | None = None
            detail = ""
            kept = b""
            try:
                async with slots:
                    sent = loop.time()
                    async with asyncio.timeout(timeout):
                        request = client.build_request(
                            method, path, json=body, headers=headers or None
                        )
                        response = await client.send(request, stream=True)
                        try:
                            size = 0
                            chunks = []
                            async for chunk in response.aiter_bytes():
                                size += len(chunk)
                                if size > body_limit:
                                    error, detail = "body-too-large", f"over {body_limit} bytes"
                                    break
                                if keep_bodies:
                                    chunks.append(chunk)
                            status = response.status_code
                            kept = b"".join(chunks)
                        finally:
                            await response.aclose()
            except TimeoutError:
                error, detail = "timeout", f"no complete answer within {timeout:g} s"
            except asyncio.CancelledError:
                error, detail = "cancelled", "the run's time was up"
            except httpx.HTTPError as exc:
                error, detail = _kind(exc), f"{type(exc).__name__}: {exc}".rstrip(": ")
            samples[index] = Sample(
                index=index,
                method=method,
                path=path,
                scheduled=due - start,
                sent=None if sent is None else sent - start,
                finished=loop.time() - start,
                status=None if error is not None and error != "body-too-large" else status,
                error=error,
                detail=detail,
                body=kept,
            )

        tasks = []
        for index in range(planned):
            due = start + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(one(index, due)))
        # Requests still waiting for a slot when the last one due has had its ``timeout`` are
        # cancelled: the run never outlasts its schedule by more than that.
        grace = max(start + (planned - 1) / rate + timeout - loop.time(), 0) + 0.5
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        end = loop.time()
    done = tuple(s for s in samples if s is not None)
    last = max((s.finished for s in done), default=end - start)
    return LoadResult(samples=done, rate=rate, elapsed=max(last, 1e-9))


def _kind(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    if isinstance(exc, httpx.NetworkError):
        return "connection"
    return type(exc).__name__
