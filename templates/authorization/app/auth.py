"""Registration, login, and the caller's own profile (the previous exercise's solution)."""

from fastapi import APIRouter, HTTPException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.deps import CurrentUser, SessionDep, unauthorized
from app.models import User
from app.schemas import LoginIn, RegisterIn, TokenOut, UserOut
from app.security import create_access_token, hash_password, verify_password

router = APIRouter()


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
    if not verify_password(body.password, user.password_hash if user else None) or user is None:
        raise unauthorized("Incorrect email or password.")
    return TokenOut(access_token=create_access_token(user.id))


@router.get("/me")
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
