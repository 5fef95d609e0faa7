"""Split users.name into first_name and last_name, and add a unique email_normalized.

Expand, backfill, contract, in one transaction (Postgres runs DDL transactionally, so a failure
anywhere leaves the table as it was):

1. expand: add the new columns, nullable, so existing rows stay valid;
2. backfill: fill them from the old columns, in SQL, without loading rows into Python;
3. contract: make them NOT NULL and unique, then drop the old column.

On a live system the contract step ships in a later release, once no running code reads
``name``; here nothing else runs against the database, so one migration holds all three.

Revision ID: 0003_split_user_name
Revises: 0002_movie_reservations
Create Date: 2026-01-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_split_user_name"
down_revision = "0002_movie_reservations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("first_name", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("last_name", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("email_normalized", sa.Text(), nullable=True))

    # Everything before the first space is the first name, everything after it the last name
    # ("Anna van der Berg" -> "Anna" + "van der Berg"), so first || ' ' || last == name. A name
    # without a space keeps it whole as the first name and gets an empty last name.
    op.execute(
        """
        UPDATE users SET
            first_name = CASE WHEN strpos(name, ' ') > 0
                              THEN left(name, strpos(name, ' ') - 1) ELSE name END,
            last_name = CASE WHEN strpos(name, ' ') > 0
                             THEN substr(name, strpos(name, ' ') + 1) ELSE '' END,
            email_normalized = lower(btrim(email))
        """
    )

    op.alter_column("users", "first_name", nullable=False)
    op.alter_column("users", "last_name", nullable=False)
    op.alter_column("users", "email_normalized", nullable=False)
    # Fails (and rolls everything back) if two existing addresses differ only in case: better
    # to learn that here than to keep duplicate accounts.
    op.create_unique_constraint("users_email_normalized_key", "users", ["email_normalized"])
    op.drop_column("users", "name")


def downgrade() -> None:
    # The reverse, just as careful with the data: rebuild name before dropping its parts.
    op.add_column("users", sa.Column("name", sa.Text(), nullable=True))
    op.execute("UPDATE users SET name = btrim(first_name || ' ' || last_name)")
    op.alter_column("users", "name", nullable=False)
    op.drop_constraint("users_email_normalized_key", "users", type_="unique")
    op.drop_column("users", "email_normalized")
    op.drop_column("users", "last_name")
    op.drop_column("users", "first_name")
