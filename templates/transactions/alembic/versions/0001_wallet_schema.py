"""Wallet schema: accounts and the ledger of transfers (fixed by the exercise).

Revision ID: 0001_wallet_schema
Revises:
Create Date: 2025-01-06 00:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_wallet_schema"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("balance_cents", sa.BigInteger(), nullable=False, server_default="0"),
        # The last line of defence: no statement may leave a balance below zero.
        sa.CheckConstraint("balance_cents >= 0", name="accounts_balance_non_negative"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.CheckConstraint("amount_cents <> 0", name="ledger_entries_amount_non_zero"),
    )
    op.create_index("ix_ledger_entries_transfer_id", "ledger_entries", ["transfer_id"])
    op.create_index("ix_ledger_entries_account_id", "ledger_entries", ["account_id"])


def downgrade() -> None:
    op.drop_table("ledger_entries")
    op.drop_table("accounts")
