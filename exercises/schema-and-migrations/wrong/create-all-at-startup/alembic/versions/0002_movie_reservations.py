"""Movies, auditoriums, seats, showtimes and reservations (made by the app at startup).

Revision ID: 0002_movie_reservations
Revises: 0001_create_users
Create Date: 2026-01-02 00:00:00
"""

revision = "0002_movie_reservations"
down_revision = "0001_create_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # Base.metadata.create_all() in app/main.py makes the tables


def downgrade() -> None:
    pass
