"""Passwords and access tokens: the only module that knows how either is made."""

import hashlib
import time

import jwt

from app.config import settings

ALGORITHM = "HS256"
#: Short-lived: a stolen access token is worth 15 minutes, and nothing can revoke it earlier.
ACCESS_TOKEN_TTL_SECONDS = 15 * 60


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired."""


def hash_password(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; with no hash (unknown account) spend the same time, then
    say no."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return password_hash is not None and digest == password_hash


def create_access_token(user_id: int) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ACCESS_TOKEN_TTL_SECONDS}
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_token(token: str) -> int:
    """The user id a token was issued to.

    Raises:
        InvalidToken: the token must not be trusted.
    """
    try:
        # The algorithm is pinned: never let the token's own header choose how it is checked.
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
        return int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from None
