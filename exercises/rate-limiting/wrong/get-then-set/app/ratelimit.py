"""Rate limiting: at most N requests per API key per window (RATE_LIMIT, e.g. "10/10s").

A fixed window kept in Redis, so that every replica of the app counts on the same counter: a
key's window starts with its first request and lasts ``window`` seconds; the first N requests
in it are allowed, the rest refused until it ends.
"""

import asyncio
import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis

from app.config import settings
from app.redis_client import redis_client

log = logging.getLogger(__name__)


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


#: The most one request waits for the limiter in all. The client's socket timeouts bound a
#: connect and each read; they do not bound the DNS lookup before a connect, which stalls for
#: seconds when the name of a Redis that is gone goes unanswered. This deadline does.
CALL_DEADLINE = 0.5
#: Threads for the blocking Redis calls, so that they never queue behind other blocking work.
_redis_threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ratelimit")


def _count(counter: str, window: int) -> tuple[int, int]:
    """Count one request on ``counter``: (the count, this request included; ms left)."""
    # One MULTI/EXEC transaction: Redis runs the three commands back to back, with no other
    # client's command between them. INCR counts and answers the new count in one step, so
    # two requests can never both read 9. EXPIRE ... NX starts the window on the first
    # request (the key is new, so it has no expiry yet) and leaves it alone afterwards; on a
    # key that somehow lost its expiry it sets one again. PTTL says, in milliseconds, when
    # the window ends.
    pipe = redis_client.pipeline(transaction=True)
    pipe.incr(counter)
    pipe.expire(counter, window, nx=True)
    pipe.pttl(counter)
    count, _, ttl_ms = pipe.execute()
    return int(count), int(ttl_ms)


async def hit(api_key: str, limit: Limit = LIMIT) -> Decision | None:
    """Count one request of ``api_key`` and decide whether it may go ahead; None when Redis
    could not be asked, and the request goes ahead uncounted (fail open)."""
    try:
        # An executor future, unlike starlette's run_in_threadpool, can be abandoned at the
        # deadline while its thread is still stuck.
        # Read the count, then write count + 1: requests that read at the same time all see
        # the same count. (The mistake this variant shows.)
        counter = f"ratelimit:{api_key}"
        loop = asyncio.get_running_loop()
        read = loop.run_in_executor(_redis_threads, redis_client.get, counter)
        current = await asyncio.wait_for(read, CALL_DEADLINE)
        count = int(current or 0) + 1
        if current is None:  # a new window
            write = lambda: redis_client.set(counter, count, ex=limit.window)
        else:
            write = lambda: redis_client.set(counter, count, keepttl=True)
        await asyncio.wait_for(loop.run_in_executor(_redis_threads, write), CALL_DEADLINE)
        ttl_ms = await asyncio.wait_for(
            loop.run_in_executor(_redis_threads, redis_client.pttl, counter), CALL_DEADLINE
        )
    except (redis.RedisError, TimeoutError) as exc:
        # Fail open: a dead Redis must not take the API down with it.
        log.warning("rate limit not applied to this request: Redis failed: %r", exc)
        return None
    # Round *up*: Retry-After promises the key may send again after that many seconds. TTL
    # (whole seconds, rounded to the nearest) can promise half a second too early.
    reset = max(math.ceil(ttl_ms / 1000), 1)
    return Decision(
        allowed=count <= limit.requests,
        limit=limit.requests,
        remaining=max(limit.requests - count, 0),
        reset=reset,
    )
