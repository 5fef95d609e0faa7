"""The Redis client the cache will use (REDIS_URL).

    python -c "from app.cache import redis_client; print(redis_client.ping())"
"""

import redis

from app.config import settings

# TODO: no timeouts. redis-py waits as long as the socket does: a Redis that stops answering
# (a full network, a paused server) makes every request that touches it wait forever. Give the
# client short socket_connect_timeout and socket_timeout (a cache that answers in more than a
# few tens of milliseconds is no use anyway). See README.md.
redis_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
