"""The posts resource: create, read, replace, delete and search blog posts."""

import itertools
import threading
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from app.schemas import PostIn, PostOut, Text

router = APIRouter(prefix="/posts", tags=["posts"])

PostId = Annotated[int, Path(ge=1, le=2**63 - 1)]

# Quick and simple: the posts live in this process.
posts: dict[int, PostOut] = {}
next_id = itertools.count(1)
lock = threading.Lock()


def find_post(post_id: int) -> PostOut:
    if post_id not in posts:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no post {post_id}.")
    return posts[post_id]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_post(payload: PostIn, response: Response) -> PostOut:
    now = datetime.now(timezone.utc)
    with lock:
        post = PostOut(id=next(next_id), created_at=now, updated_at=now, **payload.model_dump())
        posts[post.id] = post
    response.headers["Location"] = f"/posts/{post.id}"
    return post


@router.get("")
def list_posts(term: Annotated[Text | None, Query(max_length=200)] = None) -> list[PostOut]:
    found = sorted(posts.values(), key=lambda post: post.id)
    if term:
        needle = term.lower()
        found = [post for post in found
                 if any(needle in text.lower() for text in (post.title, post.content, post.category))]
    return found


@router.get("/{post_id}")
def get_post(post_id: PostId) -> PostOut:
    return find_post(post_id)


@router.put("/{post_id}")
def replace_post(post_id: PostId, payload: PostIn) -> PostOut:
    old = find_post(post_id)
    post = PostOut(id=post_id, created_at=old.created_at, updated_at=datetime.now(timezone.utc),
                   **payload.model_dump())
    posts[post_id] = post
    return post


@router.delete("/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_post(post_id: PostId) -> None:
    find_post(post_id)
    del posts[post_id]
