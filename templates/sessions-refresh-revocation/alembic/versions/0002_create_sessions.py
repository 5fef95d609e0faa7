"""Sessions: one row per login, holding its refresh token.

Change this migration as you need (the grader builds a new database every time), or add a
0003 after it.

Revision ID: 0002_create_sessions
Revises: 0001_create_users
Create Date: 2025-02-17 00:00:01
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_create_sessions"
down_revision = "0001_create_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: this table keeps the refresh token itself: whoever reads the table (a backup, a
    # replica, a SQL injection) can log in as every user. Store a hash of it instead.
    # TODO: a session needs a way to end (revoked_at), and rotation needs to tell a refresh
    # token already used from the current one: one row per refresh token, in a family (the
    # login it descends from), or a sessions table plus a refresh_tokens table.
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])


def downgrade() -> None:
    op.drop_table("sessions")
