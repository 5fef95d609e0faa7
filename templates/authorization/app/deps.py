"""Who is calling: the dependencies every protected route declares."""

from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import User
from app.security import InvalidToken, decode_token

SessionDep = Annotated[Session, Depends(get_session)]
bearer_scheme = HTTPBearer(auto_error=False)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session: SessionDep,
) -> User:
    """The caller, loaded fresh from the database on every request: a role taken away or an
    account moved to another organisation counts at once, not when the token expires."""
    if credentials is None:
        raise unauthorized("Not authenticated.")
    try:
        user_id = decode_token(credentials.credentials)
    except InvalidToken:
        raise unauthorized("The access token is invalid or has expired.") from None
    user = session.get(User, user_id)
    if user is None:
        raise unauthorized("The access token is invalid or has expired.")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def admin_user(user: CurrentUser) -> User:
    # TODO: this only proves the caller is logged in; an admin route needs an admin.
    return user


AdminUser = Annotated[User, Depends(admin_user)]
