"""Passwords and access tokens: the only module that knows how either is made."""

import time

import bcrypt
import jwt

from app.config import settings

ALGORITHM = "HS256"
#: Short-lived: a stolen access token is worth 15 minutes, and nothing can revoke it earlier.
ACCESS_TOKEN_TTL_SECONDS = 15 * 60

# bcrypt, cost 12, salted; but bcrypt reads only the first 72 bytes, and nothing here stops a
# longer password.

#: Verified against when the email has no account, so that a login costs the same time whether
#: or not the account exists (the password can never match it: it is hashed from random bytes).
DUMMY_HASH = bcrypt.hashpw(time.time_ns().to_bytes(8, "big"), bcrypt.gensalt())


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired."""


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; with no hash (unknown account) spend the same time, then
    say no."""
    stored = password_hash.encode() if password_hash else DUMMY_HASH
    try:
        matches = bcrypt.checkpw(password.encode(), stored)
    except ValueError:
        return False
    return matches and password_hash is not None


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
