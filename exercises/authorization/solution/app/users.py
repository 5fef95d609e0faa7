"""The caller's own account, and the administrators' view of every account."""

from fastapi import APIRouter, HTTPException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.deps import AdminUser, CurrentUser, SessionDep
from app.models import User
from app.schemas import UserOut, UserUpdate

router = APIRouter()


@router.get("/users/me")
def read_me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.patch("/users/me")
def update_me(body: UserUpdate, user: CurrentUser, session: SessionDep) -> UserOut:
    # UserUpdate holds only what users may change about themselves, so copying it is safe.
    for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(user, field, value)
    try:
        session.commit()
    except IntegrityError:
        raise HTTPException(409, "An account with this email already exists.") from None
    return UserOut.model_validate(user)


@router.get("/admin/users")
def list_users(admin: AdminUser, session: SessionDep) -> list[UserOut]:
    users = session.scalars(select(User).order_by(User.id))
    return [UserOut.model_validate(user) for user in users]
