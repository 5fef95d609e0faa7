"""The open-loop load generator against a real local server (no Docker)."""

from __future__ import annotations

import asyncio
import math

import pytest

from bb.grader import open_loop, percentile
from tests.local_server import LocalServer, response


async def fast(*_: object) -> bytes:
    return response(200, b"ok")


async def fails(*_: object) -> bytes:
    return response(500, b"boom")


async def big(*_: object) -> bytes:
    return response(200, b"x" * 5000)


async def hang(*_: object) -> bytes:
    await asyncio.sleep(30)
    return response(200)


def serial(seconds: float) -> object:
    """A route that serves one request at a time, each taking ``seconds``."""
    lock = asyncio.Lock()

    async def route(*_: object) -> bytes:
        async with lock:
            await asyncio.sleep(seconds)
        return response(200, b"done")

    return route


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert math.isinf(percentile([], 99))
    with pytest.raises(ValueError):
        percentile(values, 0)


def test_latency_counts_from_the_due_time_not_from_sending() -> None:
    # The server handles one request at a time in 40 ms while they arrive every 20 ms: the
    # queue grows, and request i cannot end before 40 ms × (i + 1). Measured from when each
    # was sent on a free connection, every latency would look like 40 ms.
    server = LocalServer({"/serial": serial(0.04)})  # type: ignore[dict-item]
    with server.running():
        result = open_loop(
            server.url, [("GET", "/serial", None)], rate=50, count=10, timeout=5, max_in_flight=10
        )
    assert len(result.samples) == 10 and result.ok_count == 10
    by_index = sorted(result.samples, key=lambda s: s.index)
    assert [round(s.scheduled, 3) for s in by_index] == [round(i * 0.02, 3) for i in range(10)]
    # Lower bounds only (a loaded machine makes it slower, never faster). Requests may reach
    # the server out of order, but the k-th to finish cannot end before 40 ms × k.
    finishes = sorted(s.finished for s in result.samples)
    assert all(f >= 0.04 * (k + 1) - 0.005 for k, f in enumerate(finishes))
    latencies = result.latencies()
    # Σ latency = Σ finish − Σ due ≥ 40 ms × (1 + … + 10) − 20 ms × (0 + … + 9) = 1.3 s.
    assert sum(latencies) / len(latencies) >= 0.125
    assert result.max_latency >= 0.215
    assert result.p99 == result.max_latency
    # Counted from sending on a free connection, they would look like 40 ms each.
    assert max(s.finished - (s.sent or 0) for s in result.samples) < result.max_latency


def test_statuses_errors_caps_and_timeouts_are_counted() -> None:
    server = LocalServer({"/fast": fast, "/fails": fails, "/big": big, "/hang": hang})
    requests = [("GET", "/fast", None), ("POST", "/fails", {"a": 1}), ("GET", "/big", None),
                ("GET", "/hang", None)]  # fmt: skip
    with server.running():
        result = open_loop(
            server.url, requests, rate=40, count=8, timeout=1.5, body_limit=1000, keep_bodies=True
        )
    assert len(result.samples) == 8
    assert result.errors == {"body-too-large": 2, "timeout": 2}
    assert result.statuses == {200: 4, 500: 2}
    assert result.ok_count == 2 and result.error_rate == pytest.approx(0.75)
    fast_samples = [s for s in result.samples if s.path == "/fast"]
    assert all(s.body == b"ok" and s.ok for s in fast_samples)
    hung = [s for s in result.samples if s.path == "/hang"]
    assert all(1.45 <= s.finished - (s.sent or 0) <= 5.0 for s in hung)
    # Only requests that got a response count in the latencies, unless asked.
    assert len(result.latencies()) == 4
    assert len(result.latencies(include_errors=True)) == 8
    assert "8 requests at 40/s" in result.summary() and "timeout×2" in result.summary()


def test_duration_bounds_the_run_and_the_schedule_is_kept() -> None:
    server = LocalServer({"/fast": fast})
    with server.running():
        result = open_loop(
            server.url, lambda i: ("GET", f"/fast?i={i}", None), rate=100, duration=0.5, timeout=20
        )
    assert len(result.samples) == 50
    assert {s.path for s in result.samples} == {f"/fast?i={i}" for i in range(50)}
    assert result.ok_count == 50
    assert sorted(s.scheduled for s in result.samples) == pytest.approx(
        [i / 100 for i in range(50)], abs=1e-6
    )
    lags = [s.send_lag for s in result.samples]
    assert all(lag is not None and lag >= -0.002 for lag in lags)
    assert result.elapsed >= 0.49


def test_a_refused_connection_is_an_error_not_a_crash() -> None:
    server = LocalServer({})
    with server.running():
        port = server.port
    result = open_loop(f"http://127.0.0.1:{port}", [("GET", "/", None)], rate=100, count=3,
                       timeout=1)  # fmt: skip
    assert result.errors == {"connect": 3}
    assert math.isinf(result.p99) and result.throughput == 0.0


def test_a_run_must_be_bounded() -> None:
    with pytest.raises(ValueError, match="bounded"):
        open_loop("http://127.0.0.1:9", [("GET", "/", None)], rate=10)
    with pytest.raises(ValueError, match="rate"):
        open_loop("http://127.0.0.1:9", [("GET", "/", None)], rate=1e9, count=1)
