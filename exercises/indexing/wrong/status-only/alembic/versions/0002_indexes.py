"""Indexes for the three read paths: a customer's orders, a customer by email, product search.

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
    # pg_trgm is a trusted extension; creating it takes no lock on the tables.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # CONCURRENTLY builds without blocking writes to these live tables. It cannot run inside
    # a transaction, and alembic wraps each migration in one: hence the autocommit block.
    with op.get_context().autocommit_block():
        # Equality columns first, then the sort column (and id, its tie-breaker): the 20
        # newest shipped orders of one customer are 20 consecutive index entries.
        # Only status: a quarter of all orders are shipped.
        op.create_index(
            "ix_orders_customer_status_created", "orders", ["status"],
            postgresql_concurrently=True,
        )
        # An expression index answers exactly that expression: lower(email) = lower(:email).
        # Unique, too: two customers may not share an email in any spelling of it.
        op.create_index(
            "ix_customers_lower_email", "customers", [sa.text("lower(email)")],
            unique=True, postgresql_concurrently=True,
        )
        # Trigrams let a GIN index find '%...%' (and ILIKE) without reading every name.
        op.create_index(
            "ix_products_name_trgm", "products", ["name"],
            postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"},
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_products_name_trgm", "products", postgresql_concurrently=True)
        op.drop_index("ix_customers_lower_email", "customers", postgresql_concurrently=True)
        op.drop_index("ix_orders_customer_status_created", "orders",
                      postgresql_concurrently=True)
