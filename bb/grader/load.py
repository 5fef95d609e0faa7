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
import json
import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

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
    #: cancelled (still waiting when the run's time was up).
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


class _ProtocolError(Exception):
    """The response was not HTTP/1.1 as this client reads it."""


class _TooLarge(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Client:
    """A lean HTTP/1.1 client on asyncio streams: keep-alive connections, Content-Length,
    chunked and close-delimited bodies. An HTTP library costs ten times its CPU per request,
    and here the generator's own CPU is what limits the rate it can keep."""

    def __init__(self, base_url: str, headers: dict[str, str], body_limit: int) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"open_loop speaks plain http to a host: not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head_start = f"Host: {parts.netloc}\r\nUser-Agent: bb-open-loop\r\n{extra}"
        self.body_limit = body_limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def encode(self, method: str, path: str, body: Any) -> bytes:
        payload = b"" if body is None else json.dumps(body).encode()
        typed = "Content-Type: application/json\r\n" if body is not None else ""
        length = f"Content-Length: {len(payload)}\r\n" if payload or method in _BODY_METHODS else ""
        return (
            f"{method} {self.prefix}{path} HTTP/1.1\r\n{self.head_start}{typed}{length}\r\n"
        ).encode("latin-1") + payload

    async def send(self, method: str, request: bytes) -> tuple[int, bytes]:
        """Send one request; its status and body. A kept-alive connection the server closed
        meanwhile is replaced once, as long as no byte of an answer came back on it."""
        for attempt in (0, 1):
            reused = bool(self.idle)
            reader, writer = self.idle.pop() if reused else await self._open()
            try:
                writer.write(request)
                status, body, keep = await self._read(reader, method)
            except asyncio.IncompleteReadError as exc:
                writer.close()
                if reused and not exc.partial and attempt == 0:
                    continue
                raise
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append((reader, writer))
            else:
                writer.close()
            return status, body
        raise AssertionError("unreachable")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD)
        except OSError as exc:
            raise ConnectionRefusedError(str(exc)) from exc

    async def _read(self, reader: asyncio.StreamReader, method: str) -> tuple[int, bytes, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _ProtocolError("response head over 64 KiB") from None
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise _ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        try:
            status = int(status_line[1])
        except ValueError:
            raise _ProtocolError(f"bad status: {lines[0][:80]!r}") from None
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        keep = status_line[0] == b"HTTP/1.1" and fields.get(b"connection", b"").lower() != b"close"
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return status, b"", keep
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            return status, await self._chunked(reader, status), keep
        if b"content-length" in fields:
            try:
                length = int(fields[b"content-length"])
            except ValueError:
                raise _ProtocolError("Content-Length is not a number") from None
            if length > self.body_limit:
                raise _TooLarge(status)
            return status, await reader.readexactly(length), keep
        body = b""
        while chunk := await reader.read(65536):
            body += chunk
            if len(body) > self.body_limit:
                raise _TooLarge(status)
        return status, body, False

    async def _chunked(self, reader: asyncio.StreamReader, status: int) -> bytes:
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _ProtocolError(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return body
            if len(body) + size > self.body_limit:
                raise _TooLarge(status)
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise _ProtocolError("a chunk is not followed by CRLF")

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_MAX_HEAD = 64 * 1024


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
    client = _Client(base_url, headers, body_limit)
    start = loop.time() + 0.005  # a little lead, so request 0 is not late by the set-up

    async def one(index: int, due: float) -> None:
        method, path, body = choose(index)
        sent: float | None = None
        status: int | None = None
        error: str | None = None
        detail = ""
        kept = b""
        try:
            request = client.encode(method, path, body)
            async with slots:
                sent = loop.time()
                async with asyncio.timeout(timeout):
                    status, answer = await client.send(method, request)
                    if keep_bodies:
                        kept = answer
        except TimeoutError:
            error, detail = "timeout", f"no complete answer within {timeout:g} s"
        except asyncio.CancelledError:
            error, detail = "cancelled", "the run's time was up"
        except _TooLarge as too_large:
            status = too_large.status
            error, detail = "body-too-large", f"over {body_limit} bytes"
        except _ProtocolError as exc:
            error, detail = "protocol", str(exc)
        except ConnectionRefusedError as exc:
            error, detail = "connect", str(exc)
        except (OSError, asyncio.IncompleteReadError) as exc:
            error, detail = "connection", f"{type(exc).__name__}: {exc}"
        samples[index] = Sample(
            index=index,
            method=method,
            path=path,
            scheduled=due - start,
            sent=None if sent is None else sent - start,
            finished=loop.time() - start,
            status=status if error in (None, "body-too-large") else None,
            error=error,
            detail=detail,
            body=kept,
        )

    tasks = []
    try:
        for index in range(planned):
            due = start + index / rate
            # The loop's timers wake up to a millisecond late (epoll counts in ms): sleep until
            # just before the due time, then yield to the requests in flight until it comes.
            delay = due - loop.time()
            if delay > 0.0015:
                await asyncio.sleep(delay - 0.001)
            while loop.time() < due:
                await asyncio.sleep(0)
            tasks.append(loop.create_task(one(index, due)))
        # Requests still waiting for a slot when the last one due has had its ``timeout`` are
        # cancelled: the run never outlasts its schedule by more than that.
        grace = max(start + (planned - 1) / rate + timeout - loop.time(), 0) + 0.5
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    finally:
        client.close()
    end = loop.time()
    done = tuple(s for s in samples if s is not None)
    last = max((s.finished for s in done), default=end - start)
    return LoadResult(samples=done, rate=rate, elapsed=max(last, 1e-9))
