"""Indexes for the three read paths, built with plain CREATE INDEX inside alembic's transaction.

Revision ID: 0002_indexes
Revises: 0001_orders_products
Create Date: 2026-01-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_indexes"
down_revision = "0001_orders_products"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # The right indexes, but each build holds a SHARE lock on its table until alembic commits.
    op.create_index(
        "ix_orders_customer_status_created", "orders",
        ["customer_id", "status", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index("ix_customers_lower_email", "customers", [sa.text("lower(email)")],
                    unique=True)
    op.create_index("ix_products_name_trgm", "products", ["name"], postgresql_using="gin",
                    postgresql_ops={"name": "gin_trgm_ops"})


def downgrade() -> None:
    op.drop_index("ix_products_name_trgm", "products")
    op.drop_index("ix_customers_lower_email", "customers")
    op.drop_index("ix_orders_customer_status_created", "orders")
