"""Registration, login, refresh, logout, and the caller's own profile."""

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.config import settings
from app.deps import Claims, CurrentUser, SessionDep, unauthorized
from app.models import AuthSession, User
from app.schemas import LoginIn, RefreshIn, RegisterIn, TokenPair, UserOut
from app.security import (
    create_access_token,
    hash_password,
    new_refresh_token,
    verify_password,
)

router = APIRouter()

#: One answer for every failed login, so that it can't tell which emails have an account.
BAD_LOGIN = "Incorrect email or password."
BAD_REFRESH = "The refresh token is invalid, expired or revoked."


def token_pair(user_id: int, auth: AuthSession, refresh_token: str) -> TokenPair:
    return TokenPair(
        access_token=create_access_token(user_id, auth.id),
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
    )


@router.post("/auth/register", status_code=201)
def register(body: RegisterIn, session: SessionDep) -> UserOut:
    user = User(email=body.email, password_hash=hash_password(body.password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        raise HTTPException(409, "An account with this email already exists.") from None
    return UserOut.model_validate(user)


@router.post("/auth/login")
def login(body: LoginIn, session: SessionDep) -> TokenPair:
    user = session.scalar(select(User).where(User.email == body.email))
    # Verified either way (against a dummy hash when there is no user): same time, same answer.
    if not verify_password(body.password, user.password_hash if user else None) or user is None:
        raise unauthorized(BAD_LOGIN)
    # TODO: the disabled flag is checked here, at login, and nowhere else.
    if user.disabled:
        raise HTTPException(403, "This account is disabled.")
    refresh_token = new_refresh_token()
    expires = datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds)
    # TODO: the raw refresh token goes into the database.
    auth = AuthSession(user_id=user.id, refresh_token=refresh_token, expires_at=expires)
    session.add(auth)
    session.commit()
    return token_pair(user.id, auth, refresh_token)


@router.post("/auth/refresh")
def refresh(body: RefreshIn, session: SessionDep) -> TokenPair:
    auth = session.scalar(
        select(AuthSession).where(
            AuthSession.refresh_token == body.refresh_token,
            AuthSession.expires_at > datetime.now(UTC),
        )
    )
    if auth is None:
        raise unauthorized(BAD_REFRESH)
    # TODO: no rotation. The same refresh token works again and again for 30 days, so a stolen
    # copy works as well as the real one and nobody can tell them apart. Replace it with a new
    # one on every use, refuse the old one (401), and treat a second use of an old one as a
    # theft: revoke its whole family. Two refreshes with one token at the same moment must not
    # both succeed. And a disabled user must not get new tokens.
    return token_pair(auth.user_id, auth, body.refresh_token)


@router.post("/auth/logout", status_code=204)
def logout(claims: Claims, session: SessionDep) -> Response:
    # TODO: logout does nothing. The access token stays valid until its exp, and the refresh
    # token until it expires. End the session (claims.session_id) so that both are refused from
    # the next request on, by every process of the app.
    return Response(status_code=204)


@router.get("/me")
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
