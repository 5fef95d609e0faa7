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
from app.security import create_access_token, decode_token, hash_password, verify_password

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]
# TODO: HTTPBearer answers a missing token with 403 and no WWW-Authenticate header; a request
# without credentials is a 401 that says which scheme to use.
bearer_scheme = HTTPBearer()


@router.post("/auth/register", status_code=201)
def register(body: RegisterIn, session: SessionDep) -> UserOut:
    # TODO: Alice@X.com and alice@x.com are the same mailbox, so they must be the same account.
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
    # TODO: two different answers tell an attacker which emails have an account.
    if user is None:
        raise HTTPException(401, "No account with this email.")
    if not verify_password(body.password, user.password_hash):
        raise HTTPException(401, "Wrong password.")
    return TokenOut(access_token=create_access_token(user.id))


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer_scheme)],
    session: SessionDep,
) -> User:
    # TODO: a bad token must be a 401 (with WWW-Authenticate: Bearer), never a 500.
    user = session.get(User, decode_token(credentials.credentials))
    if user is None:
        raise HTTPException(401, "Not authenticated.")
    return user


@router.get("/me")
def me(user: Annotated[User, Depends(current_user)]) -> UserOut:
    return UserOut.model_validate(user)
