"""The app's one Redis client. Every replica of the app talks to the same Redis server, so
whatever is kept there is shared; whatever is kept in a Python variable is not.

redis-py keeps a pool of connections inside the client: create it once, at import, and
reuse it for every request (a client per request would open a new TCP connection each time).
"""

import redis

from app.config import settings

#: Seconds a Redis call may take, to connect and then for each answer. Redis answers in well
#: under a millisecond; a call that takes longer than this is a Redis that is hung or gone, and
#: the limiter then fails open instead of holding the request (app/ratelimit.py).
REDIS_TIMEOUT = 0.2

redis_client = redis.Redis.from_url(
    settings.redis_url,
    decode_responses=True,
    socket_connect_timeout=REDIS_TIMEOUT,
    socket_timeout=REDIS_TIMEOUT,
)
