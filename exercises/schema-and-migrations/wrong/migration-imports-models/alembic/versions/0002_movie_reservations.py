"""Movies, auditoriums, seats, showtimes and reservations, created from the models.

Revision ID: 0002_movie_reservations
Revises: 0001_create_users
Create Date: 2026-01-02 00:00:00
"""

from alembic import op

from app.models import Auditorium, Movie, Reservation, Seat, Showtime

revision = "0002_movie_reservations"
down_revision = "0001_create_users"
branch_labels = None
depends_on = None

NEW_MODELS = (Movie, Auditorium, Seat, Showtime, Reservation)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    # The models already describe every column and constraint: no need to repeat them here.
    for model in NEW_MODELS:
        model.__table__.create(op.get_bind())


def downgrade() -> None:
    for model in reversed(NEW_MODELS):
        model.__table__.drop(op.get_bind())
