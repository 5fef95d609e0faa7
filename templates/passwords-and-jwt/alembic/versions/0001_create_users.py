"""Users: an email and a password hash (fixed by the exercise).

Revision ID: 0001_create_users
Revises:
Create Date: 2025-02-03 00:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_create_users"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.UniqueConstraint("email", name="users_email_key"),
    )


def downgrade() -> None:
    op.drop_table("users")
