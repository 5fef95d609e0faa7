"""Server-side sessions: the only module that reads or writes sessions and refresh tokens.

Every process of the app asks the database, so a logout through one replica counts in all of
them from their next request on; nothing here is kept in process memory.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.config import settings
from app.models import AuthSession, RefreshToken, User
from app.security import new_refresh_token, refresh_token_digest


class RefreshRefused(Exception):
    """The refresh token is unknown, expired, already used, or its session has ended."""


@dataclass(frozen=True)
class Issued:
    user_id: int
    session_id: uuid.UUID
    refresh_token: str


def _add_refresh_token(db: Session, session_id: uuid.UUID) -> str:
    token = new_refresh_token()
    db.add(RefreshToken(
        session_id=session_id,
        token_sha256=refresh_token_digest(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
    ))
    return token


def start(db: Session, user: User) -> Issued:
    """A new session for ``user`` (a login), with its first refresh token; committed."""
    auth = AuthSession(id=uuid.uuid4(), user_id=user.id)
    db.add(auth)
    db.flush()
    token = _add_refresh_token(db, auth.id)
    db.commit()
    return Issued(user.id, auth.id, token)


def rotate(db: Session, presented: str) -> Issued:
    """Use ``presented`` once: mark it used and issue its successor, in one transaction.

    Raises:
        RefreshRefused: no new tokens. When the token had already been used, its whole
            session is revoked first: two parties hold it, and we can't tell which one is the
            thief.
    """
    digest = refresh_token_digest(presented)
    # The WHERE used_at IS NULL makes this a compare-and-set: of two refreshes with one token at
    # the same moment, the second waits on the first's row lock, then finds used_at set and
    # updates nothing. A SELECT, then an UPDATE, would let both win.
    claimed = db.execute(
        update(RefreshToken)
        .where(RefreshToken.token_sha256 == digest, RefreshToken.used_at.is_(None),
               RefreshToken.expires_at > datetime.now(UTC))
        .values(used_at=datetime.now(UTC))
        .returning(RefreshToken.session_id)
    ).scalar_one_or_none()
    if claimed is None:
        reused = db.scalar(select(RefreshToken.session_id).where(
            RefreshToken.token_sha256 == digest, RefreshToken.used_at.is_not(None)))
        if reused is not None:
            revoke(db, reused, "refresh token reuse")
        db.rollback()
        raise RefreshRefused
    user_id = db.scalar(
        select(User.id)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == claimed, AuthSession.revoked_at.is_(None),
               User.disabled.is_(False))
    )
    if user_id is None:
        db.rollback()
        raise RefreshRefused
    token = _add_refresh_token(db, claimed)
    db.commit()
    return Issued(user_id, claimed, token)


def revoke(db: Session, session_id: uuid.UUID, reason: str) -> None:
    """End one session (its access tokens and every refresh token of its family); committed."""
    db.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )
    db.commit()


def revoke_all(db: Session, user_id: int, reason: str) -> None:
    """End every live session of a user (not committed: part of the caller's change)."""
    db.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )


def live_user(db: Session, user_id: int, session_id: uuid.UUID) -> User | None:
    """The user of a session that has not ended, if that user is not disabled: asked on every
    authenticated request (one primary-key lookup of each table)."""
    return db.scalar(
        select(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == session_id, User.id == user_id,
               AuthSession.revoked_at.is_(None), User.disabled.is_(False))
    )
