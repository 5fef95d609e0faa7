"""Indexes for the keyset walk: one in list order, one for walks filtered by status.

Revision ID: 0002_items_keyset_indexes
Revises: 0001_create_items
Create Date: 2026-01-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_items_keyset_indexes"
down_revision = "0001_create_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CONCURRENTLY builds without blocking writes, which matters on a live table; it cannot
    # run inside a transaction, hence the autocommit block.
    with op.get_context().autocommit_block():
        # The column the filter uses.
        op.create_index("ix_items_status", "items", ["status"], postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_items_status", "items", postgresql_concurrently=True)
