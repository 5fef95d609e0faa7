"""GET /authors and GET /authors/{id}/stats, each in a fixed number of statements.

A page of authors is two statements whatever its size: the authors, then the books of all of
them at once (selectinload), each book with its average rating computed by Postgres. The stats
are one statement of COUNT and AVG.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, selectinload, with_expression

from app.db import get_session
from app.models import Author, Book, Review
from app.schemas import AuthorOut, AuthorStats, BookOut

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]

#: Each book's mean rating, as a correlated subquery in the books' SELECT list (it uses the
#: index on reviews.book_id); NULL for a book without reviews, as the API wants.
BOOK_AVERAGE = (
    select(func.avg(Review.rating)).where(Review.book_id == Book.id).scalar_subquery()
)


@router.get("/authors")
def list_authors(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[AuthorOut]:
    authors = session.scalars(
        select(Author)
        .order_by(Author.id)
        .limit(limit)
        # One more SELECT ... FROM books WHERE author_id IN (...) for the whole page, with the
        # average of each book computed in it; no reviews are sent to Python at all.
        .options(selectinload(Author.books).options(
            with_expression(Book.average_rating, BOOK_AVERAGE)))
    ).all()
    return [
        AuthorOut(
            id=author.id,
            name=author.name,
            books=[
                BookOut(
                    id=book.id,
                    title=book.title,
                    average_rating=None if book.average_rating is None
                    else float(book.average_rating),
                )
                for book in author.books
            ],
        )
        for author in authors
    ]


@router.get("/authors/{author_id}/stats")
def author_stats(author_id: int, session: SessionDep) -> AuthorStats:
    # In SQL, but the average is the mean of the books' means, not of all the ratings.
    per_book = (
        select(Book.id.label("book_id"), func.count(Review.id).label("reviews"),
               func.avg(Review.rating).label("average"))
        .outerjoin(Review, Review.book_id == Book.id)
        .where(Book.author_id == author_id)
        .group_by(Book.id)
        .subquery()
    )
    row = session.execute(
        select(Author.id, func.count(per_book.c.book_id), func.coalesce(
            func.sum(per_book.c.reviews), 0), func.avg(per_book.c.average))
        .outerjoin(per_book, true())
        .where(Author.id == author_id)
        .group_by(Author.id)
    ).one_or_none()
    if row is None:
        raise HTTPException(404, f"There is no author {author_id}.")
    found_id, book_count, review_count, average = row
    return AuthorStats(
        author_id=found_id,
        book_count=book_count,
        review_count=review_count,
        average_rating=None if average is None else float(average),
    )
