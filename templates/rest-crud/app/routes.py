"""The posts resource: create, read, replace, delete and search blog posts.

Every endpoint is declared but answers 501 Not Implemented until you write it. The contract
(paths, status codes, bodies) is in README.md.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from sqlalchemy.orm import Session

from app.db import get_session
from app.schemas import PostIn, PostOut

router = APIRouter(prefix="/posts", tags=["posts"])

SessionDep = Annotated[Session, Depends(get_session)]

# TODO: bound the id at the edge. Ids are BIGINT in Postgres, so anything outside
# 1..2**63-1 can't name a post; Annotated[int, Path(ge=..., le=...)] turns it into a 422.
PostId = int


def not_implemented() -> HTTPException:
    return HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "Not implemented yet.")


@router.post("", status_code=status.HTTP_201_CREATED)
def create_post(payload: PostIn, response: Response, session: SessionDep) -> PostOut:
    # TODO: insert the post, commit, set the Location header to /posts/{id}, return it.
    raise not_implemented()


@router.get("")
def list_posts(session: SessionDep, term: str | None = None) -> list[PostOut]:
    # TODO: return every post; with ?term=, only those whose title, content or category
    # contains the term, ignoring case.
    raise not_implemented()


@router.get("/{post_id}")
def get_post(post_id: PostId, session: SessionDep) -> PostOut:
    # TODO: return the post, or 404 when there is none with this id.
    raise not_implemented()


@router.put("/{post_id}")
def replace_post(post_id: PostId, payload: PostIn, session: SessionDep) -> PostOut:
    # TODO: replace the post's fields and move updated_at forward (404 when it doesn't exist).
    raise not_implemented()


@router.delete("/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_post(post_id: PostId, session: SessionDep) -> None:
    # TODO: delete the post (204, empty body), or 404 when it doesn't exist.
    raise not_implemented()
