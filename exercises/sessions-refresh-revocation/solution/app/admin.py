"""What administrators do to other accounts."""

from fastapi import APIRouter, HTTPException

from app import sessions
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
    user.disabled = body.disabled
    if body.disabled:
        # Every request checks the flag already; ending the sessions too means that enabling
        # the account again does not bring old, possibly stolen, tokens back to life.
        sessions.revoke_all(session, user.id, "user disabled")
    session.commit()
    return UserOut.model_validate(user)
