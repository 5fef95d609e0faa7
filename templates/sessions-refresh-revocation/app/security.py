"""Passwords and tokens: the only module that knows how any of them is made."""

import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import settings

ALGORITHM = "HS256"

# Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane) and a random salt per hash.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

#: Verified against when the email has no account, so that a login costs the same time whether
#: or not the account exists.
DUMMY_HASH = _hasher.hash(time.time_ns().to_bytes(8, "big").hex() + "not-a-password")


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: uuid.UUID


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; with no hash (unknown account) spend the same time, then
    say no."""
    try:
        matches = _hasher.verify(password_hash or DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return matches and password_hash is not None


def create_access_token(user_id: int, session_id: uuid.UUID) -> str:
    """A signed, short-lived token naming the user (sub) and the login it belongs to (sid)."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "exp": now + settings.access_token_ttl_seconds,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_access_token(token: str) -> AccessClaims:
    """What a token says, once its signature and expiry are checked.

    Raises:
        InvalidToken: the token must not be trusted.
    """
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "sid"]},
        )
        return AccessClaims(int(claims["sub"]), uuid.UUID(claims["sid"]))
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from None


def new_refresh_token() -> str:
    """An opaque random token: 256 bits, nothing to decode, meaningful only to this server."""
    return secrets.token_urlsafe(32)
