"""Steering the course's mock origin (the ``mock-origin`` image) from a grader.

The origin is the slow upstream a caching exercise puts a cache in front of. A check resets it,
counts the GETs it served (what the learner's cache let through), changes what it answers, and
makes it fail::

    origin = MockOrigin(stack.url("origin"))
    origin.reset()
    ...
    expect(origin.hits("/weather/paris") == 1, ...)
"""

from __future__ import annotations

from typing import Any

import httpx

from bb.grader import Failure


class MockOrigin:
    """A client of the mock origin's control endpoints (``/__hits``, ``/__control``,
    ``/__reset``). Every method raises :class:`Failure` if the origin does not answer."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            # Not through any proxy of the environment: the origin is on 127.0.0.1.
            response = httpx.request(
                method, self.base_url + path, json=body, timeout=self._timeout, trust_env=False
            )
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Failure(
                f"The mock origin did not answer {method} {path} ({type(exc).__name__}: {exc}). "
                "This is a problem of the grade's stack, not of your app."
            ) from exc

    def reset(self) -> None:
        """Hits to zero, bodies and failures cleared, latency back to its default."""
        self._call("POST", "/__reset")

    def hits(self, path: str | None = None) -> int:
        """How many GETs the origin has served since the last reset: for ``path``, or all."""
        counted = self._call("GET", "/__hits")
        return int(counted["total"] if path is None else counted["paths"].get(path, 0))

    def set_body(self, path: str, body: dict[str, Any]) -> None:
        """From now on, ``GET path`` answers 200 with this JSON body."""
        self._call("POST", "/__control", {"bodies": {path: body}})

    def fail(self, status: int = 500) -> None:
        """From now on, every GET answers ``status`` (until :meth:`recover`)."""
        self._call("POST", "/__control", {"fail_status": status})

    def recover(self) -> None:
        self._call("POST", "/__control", {"fail_status": None})

    def latency(self, milliseconds: int) -> None:
        """Change how long every GET takes before it answers."""
        self._call("POST", "/__control", {"latency_ms": milliseconds})
