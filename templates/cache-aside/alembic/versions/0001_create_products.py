"""Create the products table and stock it with products 1 to 1000.

Revision ID: 0001_create_products
Revises:
Create Date: 2026-01-01 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_create_products"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_cents", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.CheckConstraint("char_length(name) >= 1", name="products_name_not_empty"),
        sa.CheckConstraint("price_cents >= 0", name="products_price_not_negative"),
    )
    # The catalogue: product i is "Product i" at a price between 1.00 and 100.00.
    op.execute(
        "INSERT INTO products (id, name, price_cents) "
        "SELECT i, 'Product ' || i, 100 + (i * 7919) % 9901 FROM generate_series(1, 1000) AS i"
    )


def downgrade() -> None:
    op.drop_table("products")
