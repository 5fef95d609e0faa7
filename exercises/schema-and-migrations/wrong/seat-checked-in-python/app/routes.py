"""The reservations API: book a seat for a showtime, and cancel a booking.

The database decides whether a seat is free: the partial unique index on active reservations
refuses a second booking even when two requests race, and this module turns that refusal into
a 409. Checking first in Python would only add a window in which both requests see a free seat.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from psycopg import errors as pg_errors
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import Reservation, Seat, Showtime
from app.schemas import ReservationIn, ReservationOut

router = APIRouter(prefix="/reservations", tags=["reservations"])

SessionDep = Annotated[Session, Depends(get_session)]
ReservationId = Annotated[int, Path(ge=1, le=2**63 - 1)]

ONE_ACTIVE_PER_SEAT = "reservations_one_active_per_seat"


@router.post("", status_code=status.HTTP_201_CREATED)
def reserve(body: ReservationIn, response: Response, session: SessionDep) -> ReservationOut:
    showtime = session.get(Showtime, body.showtime_id)
    seat = session.get(Seat, body.seat_id)
    if showtime is None or seat is None:
        missing = "showtime" if showtime is None else "seat"
        raise HTTPException(422, f"There is no {missing} with that id.")
    if seat.auditorium_id != showtime.auditorium_id:
        raise HTTPException(422, f"Seat {seat.id} is not in the auditorium of this showtime.")

    taken = session.scalar(
        select(Reservation.id).where(
            Reservation.showtime_id == body.showtime_id,
            Reservation.seat_id == body.seat_id,
            Reservation.status == "active",
        )
    )
    if taken is not None:
        raise HTTPException(
            409, f"Seat {body.seat_id} is already reserved for showtime {body.showtime_id}."
        )

    reservation = Reservation(
        user_id=body.user_id, showtime_id=body.showtime_id, seat_id=body.seat_id
    )
    session.add(reservation)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise conflict_or_invalid(exc, body) from None
    session.refresh(reservation)
    response.headers["Location"] = f"/reservations/{reservation.id}"
    return ReservationOut.model_validate(reservation)


@router.post("/{reservation_id}/cancel")
def cancel(reservation_id: ReservationId, session: SessionDep) -> ReservationOut:
    reservation = session.scalar(
        select(Reservation).where(Reservation.id == reservation_id).with_for_update()
    )
    if reservation is None:
        raise HTTPException(404, f"There is no reservation {reservation_id}.")
    reservation.status = "cancelled"
    session.commit()
    return ReservationOut.model_validate(reservation)


def conflict_or_invalid(exc: IntegrityError, body: ReservationIn) -> HTTPException:
    """Map what the database refused to what the client did wrong (never a 500)."""
    cause = exc.orig
    constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
    if isinstance(cause, pg_errors.UniqueViolation) and constraint == ONE_ACTIVE_PER_SEAT:
        return HTTPException(
            409, f"Seat {body.seat_id} is already reserved for showtime {body.showtime_id}."
        )
    if isinstance(cause, pg_errors.ForeignKeyViolation):
        # The user (or a row deleted since we looked) does not exist.
        return HTTPException(422, "The reservation names a user, showtime or seat that "
                                  "does not exist.")
    raise exc
