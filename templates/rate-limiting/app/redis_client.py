"""The app's one Redis client. Every replica of the app talks to the same Redis server, so
whatever is kept there is shared; whatever is kept in a Python variable is not.

redis-py's client keeps a pool of connections: create it once, at import, and reuse it for
every request (a client per request would open a new TCP connection each time). Its calls
block: from an `async def` route, run them in a worker thread
(``await asyncio.get_running_loop().run_in_executor(None, redis_client.incr, key)``).
"""

import redis

from app.config import settings

# TODO: no timeouts. If Redis stops answering (a hung server, a network partition), every
# request that asks it waits here for as long as the operating system lets it: the rate
# limiter, there to protect the app, takes it down. Give the client short connect and read
# timeouts (socket_connect_timeout=, socket_timeout=), well under your own latency budget.
redis_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
