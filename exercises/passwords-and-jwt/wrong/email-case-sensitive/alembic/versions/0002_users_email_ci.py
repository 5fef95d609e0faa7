"""No index on lower(email): uniqueness stays the case-sensitive constraint of 0001.

Revision ID: 0002_users_email_ci
Revises: 0001_create_users
Create Date: 2025-02-03 00:00:01
"""

revision = "0002_users_email_ci"
down_revision = "0001_create_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
