"""What administrators do to other accounts."""

from fastapi import APIRouter, HTTPException

from app.deps import AdminUser, SessionDep
from app.models import User
from app.schemas import UserAdminUpdate, UserOut

router = APIRouter()


@router.patch("/admin/users/{user_id}")
def update_user(user_id: int, body: UserAdminUpdate, admin: AdminUser,
                session: SessionDep) -> UserOut:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, f"User {user_id} does not exist.")
    # TODO: the flag is set, and the user's tokens go on working (see app/deps.py).
    user.disabled = body.disabled
    session.commit()
    return UserOut.model_validate(user)
