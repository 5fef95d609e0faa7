"""Who is calling: a bearer token that names a user, signed with JWT_SECRET.

A token is ``<user>.<HMAC-SHA256 of user, in hex>``: the server can check it without storing
anything, and nobody without the secret can make one. (Real services use JWTs with an expiry,
as in the auth module; this exercise is about caching, so its tokens stay simple.)

    python -m app.auth alice        # prints a token for the user "alice"
"""

import hashlib
import hmac
import re
import sys
from typing import Annotated

from fastapi import Depends, Header, HTTPException

from app.config import settings

USER_NAME = re.compile(r"[a-z0-9_-]{1,40}")


def _signature(user: str) -> str:
    return hmac.new(settings.jwt_secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def token_for(user: str) -> str:
    if not USER_NAME.fullmatch(user):
        raise ValueError("a user name is 1 to 40 of a-z, 0-9, _ and -")
    return f"{user}.{_signature(user)}"


def user_of(token: str) -> str | None:
    """The user a token names, or None when it is not a token this server signed."""
    user, _, signature = token.partition(".")
    if not USER_NAME.fullmatch(user) or not hmac.compare_digest(signature, _signature(user)):
        return None
    return user


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def optional_user(authorization: Annotated[str | None, Header()] = None) -> str | None:
    """The caller, or None for an anonymous request. A token that doesn't verify is a 401."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    user = user_of(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise unauthorized("The bearer token is not valid.")
    return user


def current_user(user: Annotated[str | None, Depends(optional_user)]) -> str:
    """The caller; an anonymous request is a 401."""
    if user is None:
        raise unauthorized("Send Authorization: Bearer <token>.")
    return user


OptionalUser = Annotated[str | None, Depends(optional_user)]
CurrentUser = Annotated[str, Depends(current_user)]


if __name__ == "__main__":
    print(token_for(sys.argv[1] if len(sys.argv) > 1 else "alice"))
