"""The JSON shapes of the library API."""

from pydantic import BaseModel


class BookOut(BaseModel):
    id: int
    title: str
    #: The mean of the book's ratings, unrounded; null when it has no reviews.
    average_rating: float | None


class AuthorOut(BaseModel):
    id: int
    name: str
    books: list[BookOut]


class AuthorStats(BaseModel):
    author_id: int
    book_count: int
    review_count: int
    #: The mean of all the ratings of all the author's books; null when there are none.
    average_rating: float | None
