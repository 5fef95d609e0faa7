"""Cache-aside over Redis, for anything whose answer is a string (JSON, here).

    body, outcome = cached("weather:Paris", lambda: fetch_weather("Paris"))

``outcome`` is what the X-Cache header says: HIT (Redis had it), MISS (it was loaded and
stored for CACHE_TTL_SECONDS) or BYPASS (Redis failed, so it was loaded and not stored).

- Every entry expires (SET ... EX): a missed invalidation heals by itself.
- One request refills a cold key (a lock taken with SET NX PX); the others wait for it,
  polling the key briefly, instead of all asking the source at once (a stampede).
- Whatever ``load`` raises propagates and nothing is stored: errors are never cached.
- Redis is optional: any Redis error is a BYPASS, and after one, Redis is left alone for
  a second, so that an outage costs each request nothing instead of a timeout.
"""

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from app.config import settings

log = logging.getLogger("app.cache")
T = TypeVar("T")

#: Short timeouts: a cache that takes longer than this to answer is worse than no cache. (A
#: few tens of milliseconds suit a Redis next to the app; these leave room for a busy machine.)
redis_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)

#: After a Redis error, requests skip Redis for this long.
COOL_OFF_SECONDS = 1.0
#: How long one refill may hold a key's lock; after that another request may take it (the
#: holder crashed, or its source hangs).
LOCK_MS = 5000
#: How often a request waiting for another's refill looks for the value, and for how long
#: before it gives up waiting and loads the value itself.
WAIT_POLL_SECONDS = 0.05
WAIT_MAX_SECONDS = 5.0

#: Deletes the lock only if it still holds our token: a refill that outlived LOCK_MS must not
#: delete the lock another request has taken since.
_release_lock = redis_client.register_script(
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
    " return 0"
)

_state = threading.Lock()
_skip_redis_until = 0.0


class CacheDown(Exception):
    """Redis failed (or failed less than COOL_OFF_SECONDS ago)."""


def _redis(command: Callable[[], T]) -> T:
    global _skip_redis_until
    if time.monotonic() < _skip_redis_until:
        raise CacheDown("Redis failed a moment ago")
    try:
        return command()
    except redis.RedisError as exc:
        with _state:
            _skip_redis_until = time.monotonic() + COOL_OFF_SECONDS
        log.warning("Redis failed, serving without the cache: %s", exc)
        raise CacheDown(str(exc)) from exc


def _store(key: str, value: str) -> None:
    try:
        _redis(lambda: redis_client.set(key, value, ex=settings.cache_ttl_seconds))
    except CacheDown:
        pass  # the answer stands; the next request will try to store it again


def cached(key: str, load: Callable[[], str]) -> tuple[str, str]:
    """The value of ``key`` from Redis, or from ``load()``; and HIT, MISS or BYPASS."""
    try:
        value = _redis(lambda: redis_client.get(key))
        if value is not None:
            return value, "HIT"
        return _refill(key, load)
    except CacheDown:
        return load(), "BYPASS"


def _refill(key: str, load: Callable[[], str]) -> tuple[str, str]:
    lock, token = f"lock:{key}", secrets.token_hex(16)
    give_up = time.monotonic() + WAIT_MAX_SECONDS
    while not _redis(lambda: redis_client.set(lock, token, nx=True, px=LOCK_MS)):
        # Another request is refilling the key: wait for its value.
        time.sleep(WAIT_POLL_SECONDS)
        value = _redis(lambda: redis_client.get(key))
        if value is not None:
            return value, "HIT"
        if time.monotonic() > give_up:
            value = load()
            _store(key, value)
            return value, "MISS"
    try:
        # Someone may have refilled it between our GET and our lock.
        value = _redis(lambda: redis_client.get(key))
        if value is not None:
            return value, "HIT"
        value = load()  # if it raises, nothing is stored
        _store(key, value)
        return value, "MISS"
    finally:
        try:
            _redis(lambda: _release_lock(keys=[lock], args=[token]))
        except CacheDown:
            pass  # the lock expires by itself after LOCK_MS


def invalidate(key: str) -> None:
    """Delete ``key``: call it after the change to the source of truth has committed."""
    try:
        _redis(lambda: redis_client.delete(key))
    except CacheDown:
        # The entry expires within CACHE_TTL_SECONDS; a Redis that is down serves nothing.
        log.warning("could not invalidate %s", key)
