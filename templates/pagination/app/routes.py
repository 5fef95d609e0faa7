"""GET /items: the list, newest first, one page at a time.

This works on a quiet table of a few hundred rows. It breaks on a live one, and it slows down
page by page on a big one: the lesson (`bb start pagination` prints it again) explains why.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import Item
from app.schemas import ItemOut, ItemPage

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]


@router.get("/items")
def list_items(
    session: SessionDep,
    # TODO: default 20, at most 100, at least 1; anything else is a 422.
    limit: int = 20,
    cursor: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
) -> ItemPage:
    # TODO: the cursor is client input. int("garbage") raises, and that is a 500 here; a bad
    # or tampered cursor must be a 400. Make it opaque, and sign it.
    offset = int(cursor) if cursor else 0

    query = select(Item)
    # TODO: the filters are read from the query string only, so the second page forgets them
    # unless the client sends them again. The cursor should carry them.
    if status is not None:
        query = query.where(Item.status == status)
    if created_after is not None:
        query = query.where(Item.created_at > created_after)

    # TODO: OFFSET counts positions. Rows inserted or deleted while a client walks the list
    # shift every position, so pages repeat or skip rows; and Postgres still reads and throws
    # away `offset` rows to find page 900. Seek past the last row sent instead:
    #     WHERE (created_at, id) < (:last_created_at, :last_id)
    rows = session.scalars(
        query.order_by(Item.created_at.desc(), Item.id.desc()).offset(offset).limit(limit)
    ).all()

    next_cursor = str(offset + limit) if len(rows) == limit else None
    return ItemPage(items=[ItemOut.model_validate(row) for row in rows], next_cursor=next_cursor)
