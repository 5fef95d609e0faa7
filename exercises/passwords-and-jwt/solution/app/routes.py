"""Registration, login, and the caller's own profile."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import User
from app.schemas import LoginIn, RegisterIn, TokenOut, UserOut
from app.security import (
    InvalidToken,
    create_access_token,
    decode_token,
    hash_password,
    verify_password,
)

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]
# auto_error=False: a missing token is our 401 (with its challenge), not HTTPBearer's 403.
bearer_scheme = HTTPBearer(auto_error=False)

#: One answer for every failed login, so that it can't tell which emails have an account.
BAD_LOGIN = "Incorrect email or password."


def unauthorized(detail: str) -> HTTPException:
    # RFC 6750: a 401 names the scheme the client should use.
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


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
def login(body: LoginIn, session: SessionDep) -> TokenOut:
    user = session.scalar(select(User).where(User.email == body.email))
    # Verified either way (against a dummy hash when there is no user): same time, same answer.
    if not verify_password(body.password, user.password_hash if user else None) or user is None:
        raise unauthorized(BAD_LOGIN)
    return TokenOut(access_token=create_access_token(user.id))


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session: SessionDep,
) -> User:
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


@router.get("/me")
def me(user: Annotated[User, Depends(current_user)]) -> UserOut:
    return UserOut.model_validate(user)
