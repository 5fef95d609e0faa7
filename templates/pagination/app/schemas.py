"""The JSON shapes of the items API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str
    created_at: datetime
    title: str


class ItemPage(BaseModel):
    """One page of the list, and where the next one starts (null on the last page)."""

    items: list[ItemOut]
    next_cursor: str | None
