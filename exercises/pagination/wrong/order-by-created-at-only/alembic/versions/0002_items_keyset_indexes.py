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
        # Exactly the list order, so `WHERE (created_at, id) < (:c, :i) ORDER BY created_at
        # DESC, id DESC LIMIT n` is one descent of the tree and n entries read after it.
        op.create_index(
            "ix_items_created_at_id", "items",
            [sa.text("created_at DESC")],
            postgresql_concurrently=True,
        )
        # Equality column first, then the sort: a walk of one status reads only its rows,
        # however rare that status is.
        op.create_index(
            "ix_items_status_created_at_id", "items",
            ["status", sa.text("created_at DESC")],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_items_status_created_at_id", "items", postgresql_concurrently=True)
        op.drop_index("ix_items_created_at_id", "items", postgresql_concurrently=True)
