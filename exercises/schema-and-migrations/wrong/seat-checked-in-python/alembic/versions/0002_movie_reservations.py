"""Movies, auditoriums, seats, showtimes and reservations, with the rules the database enforces.

Revision ID: 0002_movie_reservations
Revises: 0001_create_users
Create Date: 2026-01-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_movie_reservations"
down_revision = "0001_create_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # btree_gist lets a GiST index compare plain equality (auditorium_id WITH =) next to the
    # range overlap (during WITH &&) in one exclusion constraint.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "movies",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.CheckConstraint("duration_minutes > 0", name="movies_duration_positive"),
    )
    op.create_table(
        "auditoriums",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.UniqueConstraint("name", name="auditoriums_name_key"),
    )
    op.create_table(
        "seats",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("auditorium_id", sa.BigInteger(),
                  sa.ForeignKey("auditoriums.id", ondelete="CASCADE"), nullable=False),
        sa.Column("row_label", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.UniqueConstraint("auditorium_id", "row_label", "number", name="seats_position_key"),
        sa.CheckConstraint("number > 0", name="seats_number_positive"),
    )
    op.create_table(
        "showtimes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("movie_id", sa.BigInteger(), sa.ForeignKey("movies.id"), nullable=False),
        sa.Column("auditorium_id", sa.BigInteger(), sa.ForeignKey("auditoriums.id"),
                  nullable=False),
        sa.Column("during", postgresql.TSTZRANGE(), nullable=False),
        # Integer cents: exact, and summing them never drifts the way floats do.
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name="showtimes_price_non_negative"),
        sa.CheckConstraint(
            "NOT isempty(during) AND NOT lower_inf(during) AND NOT upper_inf(during)",
            name="showtimes_during_bounded",
        ),
        postgresql.ExcludeConstraint(
            ("auditorium_id", "="), ("during", "&&"), name="showtimes_no_overlap", using="gist",
        ),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("showtime_id", sa.BigInteger(), sa.ForeignKey("showtimes.id"), nullable=False),
        sa.Column("seat_id", sa.BigInteger(), sa.ForeignKey("seats.id"), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="active"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('active', 'cancelled')", name="reservations_status_known"),
    )
    # Whether a seat is free is checked by the app before it inserts.


def downgrade() -> None:
    # Children before parents: a table can't go while foreign keys still point at it.
    op.drop_table("reservations")
    op.drop_table("showtimes")
    op.drop_table("seats")
    op.drop_table("auditoriums")
    op.drop_table("movies")
    # btree_gist stays: an extension belongs to the whole database, and other schemas may use it.
