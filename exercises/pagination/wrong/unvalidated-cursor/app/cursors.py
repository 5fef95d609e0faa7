"""Cursors: the last row of a page, and the walk's filters, as base64url JSON."""

import base64

from pydantic import AwareDatetime, BaseModel


class InvalidCursor(ValueError):
    """The cursor was not issued by this API."""


class Cursor(BaseModel):
    created_at: AwareDatetime
    id: int
    status: str | None
    created_after: AwareDatetime | None


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(cursor.model_dump_json().encode()).decode()


def decode_cursor(token: str) -> Cursor:
    # Our own cursors always decode: we wrote them.
    return Cursor.model_validate_json(base64.urlsafe_b64decode(token))
