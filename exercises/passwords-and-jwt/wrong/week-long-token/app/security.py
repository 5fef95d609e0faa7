"""Passwords and access tokens: the only module that knows how either is made."""

import time

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import settings

ALGORITHM = "HS256"
#: Short-lived: a stolen access token is worth 15 minutes, and nothing can revoke it earlier.
ACCESS_TOKEN_TTL_SECONDS = 7 * 24 * 3600

# Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane: about 40 ms on one core)
# and a random 16-byte salt per hash; the parameters and the salt are recorded in the hash
# string, so raising them later still verifies old hashes (check_needs_rehash tells when to
# re-hash at the next login).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

#: Verified against when the email has no account, so that a login costs the same time whether
#: or not the account exists (the password can never match it: it is hashed from random bytes).
DUMMY_HASH = _hasher.hash(time.time_ns().to_bytes(8, "big").hex() + "not-a-password")


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired."""


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
