"""ORM models of the movie-reservation schema. The migrations in alembic/versions/ create the
tables; these classes must describe exactly what the migrations build (`alembic check` compares
them, and the grader runs it).
"""

from app.db import Base  # noqa: F401  (your models subclass Base)

# TODO: one class per table of README.md: User, Movie, Auditorium, Seat, Showtime, Reservation.
#
#   class User(Base):
#       __tablename__ = "users"
#       id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
#       ...
#
# Declare the constraints too (UniqueConstraint, CheckConstraint, Index(..., unique=True,
# postgresql_where=...), ExcludeConstraint from sqlalchemy.dialects.postgresql), with the
# same names as in your migration, so the models and the database agree.
