"""Who is calling: the dependencies every protected route declares."""

from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import User
from app.security import AccessClaims, InvalidToken, decode_access_token

SessionDep = Annotated[Session, Depends(get_session)]
# auto_error=False: a missing token is our 401 (with its challenge), not HTTPBearer's 403.
bearer_scheme = HTTPBearer(auto_error=False)


def unauthorized(detail: str) -> HTTPException:
    # RFC 6750: a 401 names the scheme the client should use.
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def access_claims(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> AccessClaims:
    if credentials is None:
        raise unauthorized("Not authenticated.")
    try:
        return decode_access_token(credentials.credentials)
    except InvalidToken:
        raise unauthorized("The access token is invalid or has expired.") from None


Claims = Annotated[AccessClaims, Depends(access_claims)]


def current_user(claims: Claims, session: SessionDep) -> User:
    # TODO: blind trust. A valid signature proves the token was issued, not that its session
    # still exists: after a logout, or after an administrator disables the account, this token
    # goes on working until it expires. Check the session (claims.session_id) and the user's
    # disabled flag here, on every request.
    user = session.get(User, claims.user_id)
    if user is None:
        raise unauthorized("The access token is invalid or has expired.")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise HTTPException(403, "This needs an administrator.")
    return user


AdminUser = Annotated[User, Depends(admin_user)]
