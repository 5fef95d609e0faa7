"""Rate limiting: at most N requests per API key per window (RATE_LIMIT, e.g. "10/10s").

A fixed window kept in Redis, so that every replica of the app counts on the same counter: a
key's window starts with its first request and lasts ``window`` seconds; the first N requests
in it are allowed, the rest refused until it ends.
"""

import math
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


# The mistake this variant shows: the counters live in this process's memory, so each replica
# of the app counts on its own.
_windows: dict[str, tuple[float, int]] = {}


async def hit(api_key: str, limit: Limit = LIMIT) -> Decision | None:
    """Count one request of ``api_key`` and decide whether it may go ahead."""
    now = time.monotonic()
    started, count = _windows.get(api_key, (now, 0))
    if now - started >= limit.window:
        started, count = now, 0
    count += 1
    _windows[api_key] = (started, count)
    return Decision(
        allowed=count <= limit.requests,
        limit=limit.requests,
        remaining=max(limit.requests - count, 0),
        reset=max(math.ceil(started + limit.window - now), 1),
    )
