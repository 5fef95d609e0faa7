"""GET /authors and GET /authors/{id}/stats.

Both answer correctly. Watch how many SQL statements one request runs: switch on
``echo=True`` in app/db.py, or read pg_stat_statements (the lesson shows how), and request
/authors?limit=10, then ?limit=100. The lesson (`bb lesson n-plus-one`) explains what you see.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import Author
from app.schemas import AuthorOut, AuthorStats, BookOut

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]


@router.get("/authors")
def list_authors(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[AuthorOut]:
    # One statement for the page of authors...
    authors = session.scalars(select(Author).order_by(Author.id).limit(limit)).all()
    page = []
    for author in authors:
        books = []
        # TODO: ...then author.books runs one more statement per author (lazy loading)...
        for book in author.books:
            # TODO: ...and book.reviews one more per book, only to average the ratings in
            # Python. Load the books of the whole page at once, and let SQL average.
            ratings = [review.rating for review in book.reviews]
            average = sum(ratings) / len(ratings) if ratings else None
            books.append(BookOut(id=book.id, title=book.title, average_rating=average))
        page.append(AuthorOut(id=author.id, name=author.name, books=books))
    return page


@router.get("/authors/{author_id}/stats")
def author_stats(author_id: int, session: SessionDep) -> AuthorStats:
    author = session.get(Author, author_id)
    if author is None:
        raise HTTPException(404, f"There is no author {author_id}.")
    # TODO: this loads every book and every review of the author into Python to count and
    # average them: one statement per book, and every row over the wire. COUNT and AVG in SQL
    # give the same numbers from one statement.
    ratings = [review.rating for book in author.books for review in book.reviews]
    return AuthorStats(
        author_id=author.id,
        book_count=len(author.books),
        review_count=len(ratings),
        average_rating=sum(ratings) / len(ratings) if ratings else None,
    )
