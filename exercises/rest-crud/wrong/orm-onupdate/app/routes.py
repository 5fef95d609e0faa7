"""The posts resource: create, read, replace, delete and search blog posts."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import Post
from app.schemas import PostIn, PostOut, Text

router = APIRouter(prefix="/posts", tags=["posts"])

SessionDep = Annotated[Session, Depends(get_session)]

#: Ids are BIGINT: anything outside this range can't name a post, so it is a 422 at the edge
#: instead of an overflow error (a 500) inside Postgres.
PostId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def find_post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no post {post_id}.")
    return post


@router.post("", status_code=status.HTTP_201_CREATED)
def create_post(payload: PostIn, response: Response, session: SessionDep) -> PostOut:
    post = Post(**payload.model_dump())
    session.add(post)
    session.commit()
    session.refresh(post)  # created_at and updated_at come from the database
    response.headers["Location"] = f"/posts/{post.id}"
    return PostOut.model_validate(post)


@router.get("")
def list_posts(
    session: SessionDep, term: Annotated[Text | None, Query(max_length=200)] = None
) -> list[PostOut]:
    statement = select(Post).order_by(Post.id)
    if term:
        # icontains escapes % and _ in the term (autoescape), so they match themselves.
        statement = statement.where(
            or_(*(column.icontains(term, autoescape=True)
                  for column in (Post.title, Post.content, Post.category)))
        )
    return [PostOut.model_validate(post) for post in session.scalars(statement)]


@router.get("/{post_id}")
def get_post(post_id: PostId, session: SessionDep) -> PostOut:
    return PostOut.model_validate(find_post(session, post_id))


@router.put("/{post_id}")
def replace_post(post_id: PostId, payload: PostIn, session: SessionDep) -> PostOut:
    post = find_post(session, post_id)
    for field, value in payload.model_dump().items():
        setattr(post, field, value)
    session.commit()
    session.refresh(post)
    return PostOut.model_validate(post)


@router.delete("/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_post(post_id: PostId, session: SessionDep) -> None:
    session.delete(find_post(session, post_id))
    session.commit()
