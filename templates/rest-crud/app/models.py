"""The posts table as SQLAlchemy maps it. The migration in alembic/versions/ creates it."""

from app.db import Base  # noqa: F401  (your model subclasses Base)

# TODO: declare the Post model for the table "posts", with SQLAlchemy 2.0 typed columns:
#
#   class Post(Base):
#       __tablename__ = "posts"
#
#       id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
#       title: Mapped[str] = ...      (at most 200 characters)
#       content, category: Mapped[str] = ...
#       tags: Mapped[list[str]] = ... (a Postgres text[]: sqlalchemy.dialects.postgresql.ARRAY)
#       created_at, updated_at: Mapped[datetime] = ... (timestamptz, set by the database)
#
# Keep it in step with the migration: the migration is what really creates the table.
