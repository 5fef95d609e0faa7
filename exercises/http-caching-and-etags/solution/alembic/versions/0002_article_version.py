"""Give every article a version, bumped by each update: its ETag, and the value If-Match checks.

Revision ID: 0002_article_version
Revises: 0001_create_articles
Create Date: 2026-01-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_article_version"
down_revision = "0001_create_articles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("articles", sa.Column("version", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    op.drop_column("articles", "version")
