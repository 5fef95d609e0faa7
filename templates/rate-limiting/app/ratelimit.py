"""Rate limiting: at most N requests per API key per window (RATE_LIMIT, e.g. "10/10s").

A fixed window: a key's window starts with its first request and lasts ``window`` seconds;
the first N requests in it are allowed, the rest refused until it ends.
"""

import re
import time
from dataclasses import dataclass

from app.config import settings


@dataclass(frozen=True)
class Limit:
    requests: int
    window: int  # seconds


_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_limit(text: str) -> Limit:
    """ "10/10s" -> Limit(10, 10); "100/m" -> Limit(100, 60)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*", text)
    if match is None or int(match[1]) < 1 or match[2] == "0":
        raise ValueError(f"RATE_LIMIT must look like 10/10s, 100/m or 5000/h, not {text!r}")
    return Limit(int(match[1]), int(match[2] or 1) * _UNITS[match[3]])


LIMIT = parse_limit(settings.rate_limit)


@dataclass(frozen=True)
class Decision:
    """What the limiter decided for one request."""

    allowed: bool
    limit: int
    #: Requests still allowed in this window after this one.
    remaining: int
    #: Whole seconds until the window ends (and the key may send again), at least 1.
    reset: int


# TODO: this counter lives in this process's memory. bb runs two replicas of your app, and
# each has its own dict: a client that alternates between them gets twice the limit (and a
# restart forgets every count). Keep the counters in Redis (app/redis_client.py), and update
# them atomically: INCR, then EXPIRE ... NX, in one MULTI pipeline (or a Lua script).
_windows: dict[str, tuple[float, int]] = {}


async def hit(api_key: str, limit: Limit = LIMIT) -> Decision:
    """Count one request of ``api_key`` and decide whether it may go ahead."""
    # No `await` between reading and writing the dict: no other request can run in between
    # (one event loop, one request at a time between awaits), so this is safe in one process.
    now = time.monotonic()
    started, count = _windows.get(api_key, (now, 0))
    if now - started >= limit.window:  # the old window is over: start a new one
        started, count = now, 0
    count += 1
    _windows[api_key] = (started, count)
    seconds_left = started + limit.window - now
    return Decision(
        allowed=count <= limit.requests,
        limit=limit.requests,
        remaining=max(limit.requests - count, 0),
        reset=max(int(seconds_left + 0.999), 1),
    )
