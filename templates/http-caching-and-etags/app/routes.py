"""The articles resource: a public list of published articles, and each author's own.

Everything here works, one request at a time, and sends no validator: no ETag, no
Cache-Control, no If-None-Match or If-Match. The contract to add is in README.md.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth import CurrentUser, OptionalUser
from app.db import get_session
from app.models import Article
from app.schemas import ArticleIn, ArticleOut

router = APIRouter(tags=["articles"])

SessionDep = Annotated[Session, Depends(get_session)]
#: Ids are BIGINT: anything outside this range is a 422 before any SQL runs.
ArticleId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def visible_article(session: Session, article_id: int, user: str | None) -> Article:
    """The article, if the caller may see it: published ones to anyone, drafts to their author."""
    article = session.get(Article, article_id)
    if article is None or (not article.published and article.author != user):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no article {article_id}.")
    return article


def own_article(session: Session, article_id: int, user: str) -> Article:
    article = visible_article(session, article_id, user)
    if article.author != user:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only its author may change an article.")
    return article


@router.post("/articles", status_code=status.HTTP_201_CREATED)
def create_article(
    payload: ArticleIn, user: CurrentUser, response: Response, session: SessionDep
) -> ArticleOut:
    article = Article(author=user, **payload.model_dump())
    session.add(article)
    session.commit()
    session.refresh(article)
    response.headers["Location"] = f"/articles/{article.id}"
    return ArticleOut.model_validate(article)


@router.get("/articles")
def list_articles(session: SessionDep) -> list[ArticleOut]:
    # TODO: the same for everyone, so any cache may keep it for a minute (README.md), and
    # with an ETag that changes whenever any article in it changes.
    articles = session.scalars(select(Article).where(Article.published).order_by(Article.id))
    return [ArticleOut.model_validate(article) for article in articles]


@router.get("/me/articles")
def my_articles(user: CurrentUser, session: SessionDep) -> list[ArticleOut]:
    # TODO: drafts included, so this answer is for the caller's eyes only.
    articles = session.scalars(select(Article).where(Article.author == user).order_by(Article.id))
    return [ArticleOut.model_validate(article) for article in articles]


@router.get("/articles/{article_id}")
def get_article(article_id: ArticleId, user: OptionalUser, session: SessionDep) -> ArticleOut:
    # TODO: an ETag, and 304 Not Modified when If-None-Match holds it.
    return ArticleOut.model_validate(visible_article(session, article_id, user))


@router.put("/articles/{article_id}")
def replace_article(
    article_id: ArticleId, payload: ArticleIn, user: CurrentUser, session: SessionDep
) -> ArticleOut:
    # TODO: last writer wins. Two editors who read the same version both "succeed", and the
    # second silently erases the first one's work (a lost update). Require If-Match.
    article = own_article(session, article_id, user)
    for field, value in payload.model_dump().items():
        setattr(article, field, value)
    article.updated_at = func.now()
    session.commit()
    session.refresh(article)
    return ArticleOut.model_validate(article)


@router.delete("/articles/{article_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_article(article_id: ArticleId, user: CurrentUser, session: SessionDep) -> None:
    session.delete(own_article(session, article_id, user))
    session.commit()
