"""Grader tools for authentication: JWTs minted with the app's own secret, forged ones, and a
timing comparison that stays fair on a busy machine.

    secret = app_secret(stack)                     # the JWT_SECRET bb gave the app
    token = mint_token(secret, {"sub": "42"})      # HS256, iat now, exp in 5 minutes
    for name, forged in forged_tokens(token, secret).items():
        expect_status(http.get("/me", headers=bearer(forged)), 401)

    timing = compare_timing(lambda: login(wrong_password), lambda: login(unknown_email),
                            rounds=20)
    expect(0.5 <= timing.ratio <= 2.0, ..., actual=timing.summary())

Tokens are made with PyJWT, except the forgeries no honest library will produce (``alg: none``,
a damaged signature), which are put together by hand from the same parts.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import secrets
import statistics
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:
    from bb.grader.plugin import Stack

#: Lifetime of the tokens :func:`mint_token` makes unless told otherwise.
DEFAULT_TTL = 300


def app_secret(stack: Stack, name: str = "JWT_SECRET") -> str:
    """The secret the app was started with (the exercise manifest's ``app.environment``)."""
    value = stack.environment.get(name)
    if not value:
        raise LookupError(f"the app's environment has no {name}; set it in the exercise manifest")
    return value


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(
    secret: str,
    claims: Mapping[str, Any],
    *,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
    algorithm: str = "HS256",
) -> str:
    """A JWT signed with ``secret``: ``claims`` plus ``iat`` (now) and ``exp`` (now + ``ttl``),
    unless ``claims`` sets them itself."""
    issued = int(time.time() if now is None else now)
    payload = {"iat": issued, "exp": issued + ttl, **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)


def token_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the claims of a compact JWT, read without verifying anything.

    Raises:
        ValueError: ``token`` is not three base64url parts of which the first two are JSON
            objects.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError(f"a JWT has 3 dot-separated parts, this one has {len(parts)}")
    try:
        header, claims = (json.loads(b64url_decode(part)) for part in parts[:2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"its header or claims are not base64url JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("its header and claims must be JSON objects")
    return header, claims


def _unsigned(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    def part(value: Mapping[str, Any]) -> str:
        return b64url(json.dumps(dict(value), separators=(",", ":")).encode())

    return f"{part(header)}.{part(claims)}"


def forged_tokens(
    secret: str, claims: Mapping[str, Any], *, rng: random.Random | None = None
) -> dict[str, str]:
    """Tokens for ``claims`` that a correct app refuses, by what is wrong with each:

    - ``"one signature byte flipped"``: signed with ``secret``, then one byte of the signature
      changed (decoded and re-encoded, so the change is never lost in base64 padding bits);
    - ``"alg none"``: header ``{"alg": "none"}`` and an empty signature;
    - ``"signed with another secret"``: a random secret of the same length;
    - ``"expired"``: signed with ``secret``, ``exp`` 1 to 60 minutes in the past.

    Each carries ``claims`` (typically a real user's ``sub``), so an app that skips a part of
    verification answers as if the token were good.
    """
    rng = rng or random.Random()
    now = int(time.time())
    good = mint_token(secret, claims, now=now)
    head, body, signature = good.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    _, payload = token_parts(good)
    other = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in secret)
    if other == secret:  # one chance in 36**len(secret); still, never the real one
        other += "x"
    expired_at = now - rng.randint(60, 3600)
    return {
        "one signature byte flipped": f"{head}.{body}.{b64url(bytes(raw))}",
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, payload) + ".",
        "signed with another secret": jwt.encode(payload, other, algorithm="HS256"),
        "expired": mint_token(
            secret, {**claims, "iat": expired_at - 900, "exp": expired_at}, now=now
        ),
    }


def random_secret() -> str:
    return secrets.token_urlsafe(32)


# --- timing ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TimingComparison:
    """Latencies (seconds) of two kinds of request measured interleaved; ``ratio`` is
    median(b) / median(a)."""

    label_a: str
    label_b: str
    a: tuple[float, ...]
    b: tuple[float, ...]

    @property
    def median_a(self) -> float:
        return statistics.median(self.a)

    @property
    def median_b(self) -> float:
        return statistics.median(self.b)

    @property
    def ratio(self) -> float:
        return self.median_b / self.median_a if self.median_a > 0 else float("inf")

    def summary(self) -> str:
        return (
            f"median {self.label_a}: {self.median_a * 1000:.1f} ms, median {self.label_b}: "
            f"{self.median_b * 1000:.1f} ms ({len(self.a)} + {len(self.b)} requests), "
            f"ratio {self.ratio:.2f}"
        )


def compare_timing(
    send_a: Callable[[], object],
    send_b: Callable[[], object],
    *,
    rounds: int = 20,
    warmup: int = 2,
    label_a: str = "A",
    label_b: str = "B",
    deadline: float = 60.0,
) -> TimingComparison:
    """Time ``send_a`` and ``send_b`` ``rounds`` times each, one after the other.

    On a shared machine the load changes from second to second; measured in two blocks, one
    kind could get a quiet minute and the other a busy one. Interleaved (A,B then B,A, so that
    neither always goes first), both see the same machine, and medians shrug off the odd
    request that a neighbour's burst delayed. ``warmup`` pairs are sent first and not counted
    (first connections, caches). Stops early, with what it has, once ``deadline`` seconds have
    passed; at least one round is always measured.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    for _ in range(warmup):
        send_a()
        send_b()
    a: list[float] = []
    b: list[float] = []
    started = time.monotonic()

    def timed(send: Callable[[], object], into: list[float]) -> None:
        began = time.perf_counter()
        send()
        into.append(time.perf_counter() - began)

    for index in range(rounds):
        first, second = ((send_a, a), (send_b, b)) if index % 2 == 0 else ((send_b, b), (send_a, a))
        timed(*first)
        timed(*second)
        if time.monotonic() - started > deadline:
            break
    return TimingComparison(label_a, label_b, tuple(a), tuple(b))


__all__ = [
    "TimingComparison",
    "app_secret",
    "b64url",
    "b64url_decode",
    "bearer",
    "compare_timing",
    "forged_tokens",
    "mint_token",
    "random_secret",
    "token_parts",
]
