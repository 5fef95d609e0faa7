"""One account per mailbox, whatever the case: a unique index on lower(email).

The app lower-cases emails before storing them; this index makes the database refuse a
mixed-case duplicate even from a code path that forgets to.

Revision ID: 0002_users_email_ci
Revises: 0001_create_users
Create Date: 2025-02-03 00:00:01
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_users_email_ci"
down_revision = "0001_create_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("users_email_lower_key", "users", [sa.text("lower(email)")], unique=True)


def downgrade() -> None:
    op.drop_index("users_email_lower_key", table_name="users")
