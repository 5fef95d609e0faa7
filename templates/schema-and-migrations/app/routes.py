"""The reservations API: book a seat for a showtime, and cancel a booking.

Both endpoints answer 501 Not Implemented until you write them. README.md holds the contract.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from sqlalchemy.orm import Session

from app.db import get_session
from app.schemas import ReservationIn, ReservationOut

router = APIRouter(prefix="/reservations", tags=["reservations"])

SessionDep = Annotated[Session, Depends(get_session)]
ReservationId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def not_implemented() -> HTTPException:
    return HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "Not implemented yet.")


@router.post("", status_code=status.HTTP_201_CREATED)
def reserve(body: ReservationIn, response: Response, session: SessionDep) -> ReservationOut:
    # TODO: insert an active reservation and answer 201 with a Location header. Don't check
    # "is the seat free?" in Python first: two requests can both see it free. Let the
    # database's unique index refuse the second one, catch sqlalchemy.exc.IntegrityError, and
    # turn a unique violation (SQLSTATE 23505, exc.orig.sqlstate) into a 409.
    raise not_implemented()


@router.post("/{reservation_id}/cancel")
def cancel(reservation_id: ReservationId, session: SessionDep) -> ReservationOut:
    # TODO: set the reservation's status to 'cancelled' (404 when there is none), so that the
    # seat can be booked again.
    raise not_implemented()
