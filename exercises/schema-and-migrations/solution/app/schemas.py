"""Request and response bodies of the reservations API."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Ids are BIGINT in Postgres: anything outside 1..2**63-1 can't name a row.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class ReservationIn(BaseModel):
    user_id: Id
    showtime_id: Id
    seat_id: Id


class ReservationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    showtime_id: int
    seat_id: int
    status: str
    created_at: datetime
