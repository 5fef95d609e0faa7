"""GET /items: the list, newest first, one page at a time, by keyset (seek) pagination.

Each page asks for the rows *after the last one sent*, in (created_at DESC, id DESC) order:

    SELECT ... FROM items
     WHERE (created_at, id) < (:last_created_at, :last_id)   -- plus the walk's filters
     ORDER BY created_at DESC, id DESC
     LIMIT :limit + 1

Rows inserted or deleted elsewhere in the list can't shift a key the way they shift a
position, and the index on (created_at DESC, id DESC) finds the key in one descent, however
deep the page.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.cursors import Cursor, InvalidCursor, decode_cursor, encode_cursor
from app.db import get_session
from app.models import Item
from app.schemas import ItemOut, ItemPage

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def continued_walk(
    token: str, status: str | None, created_after: datetime | None
) -> Cursor:
    """The cursor behind ``token``; 400 if it is not ours, or disagrees with the filters sent."""
    try:
        cursor = decode_cursor(token)
    except InvalidCursor:
        raise HTTPException(
            400, "The cursor is not valid: send back a next_cursor exactly as this API gave it."
        ) from None
    # The cursor carries its walk's filters. A client may repeat them, but not change them
    # halfway: that walk would match neither the old filters nor the new ones.
    if (status is not None and status != cursor.status) or (
        created_after is not None and created_after != cursor.created_after
    ):
        raise HTTPException(
            400, "The cursor belongs to a walk with other filters: start again without a cursor."
        )
    return cursor


@router.get("/items")
def list_items(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    created_after: AwareDatetime | None = None,
) -> ItemPage:
    after = None if cursor is None else continued_walk(cursor, status, created_after)
    if after is not None:
        status, created_after = after.status, after.created_after

    query = select(Item)
    if status is not None:
        query = query.where(Item.status == status)
    if created_after is not None:
        query = query.where(Item.created_at > created_after)
    if after is not None:
        # A row-value comparison: the whole key at once, which one index range scan answers.
        # id breaks ties: rows sharing a created_at are neither skipped nor repeated.
        query = query.where(Item.created_at < after.created_at)
    # One row more than asked: if it exists there is a next page, and nobody needs a count.
    rows = session.scalars(
        query.order_by(Item.created_at.desc(), Item.id.desc()).limit(limit + 1)
    ).all()

    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(Cursor(
            created_at=last.created_at, id=last.id, status=status, created_after=created_after,
        ))
    return ItemPage(items=[ItemOut.model_validate(row) for row in page], next_cursor=next_cursor)
