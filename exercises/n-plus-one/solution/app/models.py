"""Authors, their books, and the books' reviews, as SQLAlchemy maps them.

The migration in alembic/versions/ creates the tables. The relationships still load lazily by
default: each query says what it needs loaded with it (selectinload, with_expression), so
nothing is fetched behind the code's back.
"""

from sqlalchemy import BigInteger, ForeignKey, SmallInteger, Text
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from app.db import Base


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)

    books: Mapped[list["Book"]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text)

    #: Filled only by a query that asks for it: with_expression(Book.average_rating, ...).
    average_rating: Mapped[float | None] = query_expression()

    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list["Review"]] = relationship(back_populates="book")


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(SmallInteger)

    book: Mapped[Book] = relationship(back_populates="reviews")
