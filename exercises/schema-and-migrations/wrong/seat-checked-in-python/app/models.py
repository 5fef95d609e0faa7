"""ORM models of the movie-reservation schema. The migrations in alembic/versions/ create the
tables; these classes describe exactly what they build, and `alembic check` proves it.
"""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE, ExcludeConstraint, Range
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    first_name: Mapped[str] = mapped_column(Text)
    last_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    # lower(email), kept by the app: one account per address, whatever its capitalisation.
    email_normalized: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("email_normalized", name="users_email_normalized_key"),
    )


class Movie(Base):
    __tablename__ = "movies"
    __table_args__ = (
        CheckConstraint("duration_minutes > 0", name="movies_duration_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)


class Auditorium(Base):
    __tablename__ = "auditoriums"
    __table_args__ = (UniqueConstraint("name", name="auditoriums_name_key"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Seat(Base):
    __tablename__ = "seats"
    __table_args__ = (
        UniqueConstraint("auditorium_id", "row_label", "number", name="seats_position_key"),
        CheckConstraint("number > 0", name="seats_number_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    auditorium_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("auditoriums.id", ondelete="CASCADE")
    )
    row_label: Mapped[str] = mapped_column(Text)
    number: Mapped[int] = mapped_column(Integer)


class Showtime(Base):
    __tablename__ = "showtimes"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="showtimes_price_non_negative"),
        CheckConstraint(
            "NOT isempty(during) AND NOT lower_inf(during) AND NOT upper_inf(during)",
            name="showtimes_during_bounded",
        ),
        # Two showtimes in one auditorium may not overlap in time. Only an exclusion
        # constraint can say this: UNIQUE compares equality, this compares ranges with &&.
        ExcludeConstraint(
            ("auditorium_id", "="), ("during", "&&"),
            name="showtimes_no_overlap", using="gist",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    movie_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("movies.id"))
    auditorium_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("auditoriums.id"))
    during: Mapped[Range[datetime]] = mapped_column(TSTZRANGE)
    price_cents: Mapped[int] = mapped_column(Integer)


class Reservation(Base):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'cancelled')", name="reservations_status_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    showtime_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("showtimes.id"))
    seat_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("seats.id"))
    status: Mapped[str] = mapped_column(Text, server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
