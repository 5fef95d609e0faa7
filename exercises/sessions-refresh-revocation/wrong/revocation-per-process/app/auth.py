"""Registration, login, refresh, logout, and the caller's own profile."""

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import sessions
from app.config import settings
from app.deps import REVOKED_SESSIONS, Claims, CurrentUser, SessionDep, unauthorized
from app.models import User
from app.schemas import LoginIn, RefreshIn, RegisterIn, TokenPair, UserOut
from app.security import create_access_token, hash_password, verify_password

router = APIRouter()

#: One answer for every failed login, so that it can't tell which emails have an account.
BAD_LOGIN = "Incorrect email or password."
#: One answer for every refused refresh: unknown, expired, reused or revoked look the same.
BAD_REFRESH = "The refresh token is invalid, expired or revoked."


def token_pair(issued: sessions.Issued) -> TokenPair:
    return TokenPair(
        access_token=create_access_token(issued.user_id, issued.session_id),
        refresh_token=issued.refresh_token,
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
    if user.disabled:
        # Only someone who knows the password learns this, so it can say what is wrong.
        raise HTTPException(403, "This account is disabled.")
    return token_pair(sessions.start(session, user))


@router.post("/auth/refresh")
def refresh(body: RefreshIn, session: SessionDep) -> TokenPair:
    try:
        return token_pair(sessions.rotate(session, body.refresh_token))
    except sessions.RefreshRefused:
        raise unauthorized(BAD_REFRESH) from None


@router.post("/auth/logout", status_code=204)
def logout(user: CurrentUser, claims: Claims, session: SessionDep) -> Response:
    # CurrentUser first: an ended session or a disabled account can't log out again (401).
    REVOKED_SESSIONS.add(claims.session_id)
    sessions.revoke(session, claims.session_id, "logout")
    return Response(status_code=204)


@router.get("/me")
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
