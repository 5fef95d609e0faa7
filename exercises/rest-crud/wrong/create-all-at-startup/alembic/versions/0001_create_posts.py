"""Create the posts table.

Revision ID: 0001_create_posts
Revises:
Create Date: 2026-01-01 00:00:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0001_create_posts"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: create posts(id, title, content, category, tags text[], created_at, updated_at)
    # with op.create_table("posts", sa.Column(...), ...). Describe the columns here, in full:
    # don't import app.models (a migration must still run after the models change).
    pass


def downgrade() -> None:
    # TODO: undo upgrade(): op.drop_table("posts").
    pass
