"""Sessions and their refresh tokens.

A session is one login: the access token names it (sid), and ending it (revoked_at) ends every
token of that login at once. Each refresh token is stored as its SHA-256 and used once; the
tokens of one session form its family, which reuse of a used token revokes.

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
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        # Why it ended ("logout", "refresh token reuse", "user disabled"): for the one who
        # investigates, later.
        sa.Column("revoked_reason", sa.Text(), nullable=True),
    )
    # Disabling a user revokes their live sessions.
    op.create_index("ix_sessions_user_id_live", "sessions", ["user_id"],
                    postgresql_where=sa.text("revoked_at IS NULL"))
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), sa.ForeignKey("sessions.id", ondelete="CASCADE"),
                  nullable=False),
        # Hex SHA-256 of the token: found by equality, never readable back.
        sa.Column("token_sha256", sa.Text(), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("refresh_tokens")
    op.drop_table("sessions")
