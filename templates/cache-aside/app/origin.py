"""The origin: a slow upstream weather service (ORIGIN_URL) this app puts a cache in front of.

It answers ``GET /weather/{city}`` with a JSON document after a few hundred milliseconds, and
now and then fails with a 5xx, as upstream services do.
"""

from urllib.parse import quote

import httpx

from app.config import settings

#: One client for the whole process: it keeps connections to the origin open between requests
#: (a new client per request would pay a TCP handshake every time). httpx's Client is safe to
#: share between the threads FastAPI runs sync routes in.
client = httpx.Client(base_url=settings.origin_url, timeout=httpx.Timeout(5.0, connect=2.0))


class OriginError(Exception):
    """The origin failed: it answered a status other than 200, or could not be reached."""


def weather_path(city: str) -> str:
    # quote(): a city is one path segment at the origin, whatever characters it holds.
    return f"/weather/{quote(city, safe='')}"


def fetch_weather(city: str) -> str:
    """The origin's JSON body for ``city``, exactly as it sent it (a str)."""
    try:
        response = client.get(weather_path(city))
    except httpx.HTTPError as exc:
        raise OriginError(f"the origin could not be reached: {exc}") from exc
    if response.status_code != 200:
        raise OriginError(f"the origin answered {response.status_code}")
    return response.text
