"""The articles resource, with validators: ETags, conditional GETs, and updates that must name
the version they replace (If-Match), checked by the UPDATE itself."""

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Response, status
from fastapi.encoders import jsonable_encoder
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth import CurrentUser, OptionalUser
from app.db import get_session
from app.etags import article_etag, body_etag, none_match, strong_opaques
from app.models import Article
from app.schemas import ArticleIn, ArticleOut

router = APIRouter(tags=["articles"])

SessionDep = Annotated[Session, Depends(get_session)]
#: Ids are BIGINT: anything outside this range is a 422 before any SQL runs.
ArticleId = Annotated[int, Path(ge=1, le=2**63 - 1)]
IfNoneMatch = Annotated[str | None, Header()]
IfMatch = Annotated[str | None, Header()]

#: The public list is the same for everyone: any cache, shared ones included, may keep it.
PUBLIC_LIST = "public, max-age=60"
#: Anything answered to a signed-in caller may hold their drafts: only their own browser may
#: keep it, and it must ask again (with If-None-Match) before reusing it.
PRIVATE = "private, no-cache"
#: An anonymous article: storable, but revalidated every time, so an edit shows at once.
ANONYMOUS_ARTICLE = "no-cache"


def render(payload: Any) -> bytes:
    """Deterministic JSON: the same data gives the same bytes, so the same ETag."""
    return json.dumps(jsonable_encoder(payload), separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


def answer(
    body: bytes,
    etag: str,
    cache_control: str,
    if_none_match: str | None = None,
    *,
    status_code: int = status.HTTP_200_OK,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The response, or 304 with no body when the client's copy is current.

    A 304 carries the headers the 200 would have (ETag, Cache-Control): a cache refreshes its
    stored copy with them.
    """
    all_headers = {"ETag": etag, "Cache-Control": cache_control, **(headers or {})}
    if status_code == status.HTTP_200_OK and none_match(if_none_match, etag):
        # The client may as well have the body again.
        return Response(body, status_code=status.HTTP_304_NOT_MODIFIED,
                        media_type="application/json", headers=all_headers)
    return Response(body, status_code=status_code, media_type="application/json",
                    headers=all_headers)


def article_answer(article: Article, cache_control: str, if_none_match: str | None = None,
                   **options: Any) -> Response:
    return answer(render(ArticleOut.model_validate(article)),
                  article_etag(article.id, article.version), cache_control, if_none_match,
                  **options)


def list_answer(articles: Any, cache_control: str, if_none_match: str | None) -> Response:
    body = render([ArticleOut.model_validate(article) for article in articles])
    return answer(body, body_etag(body), cache_control, if_none_match)


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


def version_in(opaque: str, article_id: int) -> int | None:
    """The version an ETag of ours names for this article ("<id>.<version>"), if it does."""
    named_id, _, version = opaque.partition(".")
    if named_id != str(article_id) or not version.isdigit():
        return None
    return int(version)


@router.post("/articles", status_code=status.HTTP_201_CREATED, response_model=ArticleOut)
def create_article(payload: ArticleIn, user: CurrentUser, session: SessionDep) -> Response:
    article = Article(author=user, **payload.model_dump())
    session.add(article)
    session.commit()
    session.refresh(article)
    return article_answer(article, PRIVATE, status_code=status.HTTP_201_CREATED,
                          headers={"Location": f"/articles/{article.id}"})


@router.get("/articles", response_model=list[ArticleOut])
def list_articles(session: SessionDep, if_none_match: IfNoneMatch = None) -> Response:
    articles = session.scalars(select(Article).where(Article.published).order_by(Article.id))
    return list_answer(articles, PUBLIC_LIST, if_none_match)


@router.get("/me/articles", response_model=list[ArticleOut])
def my_articles(user: CurrentUser, session: SessionDep, if_none_match: IfNoneMatch = None
                ) -> Response:
    articles = session.scalars(select(Article).where(Article.author == user).order_by(Article.id))
    return list_answer(articles, PRIVATE, if_none_match)


@router.get("/articles/{article_id}", response_model=ArticleOut)
def get_article(article_id: ArticleId, user: OptionalUser, session: SessionDep,
                if_none_match: IfNoneMatch = None) -> Response:
    article = visible_article(session, article_id, user)
    # Drafts exist only for their author, so the answer depends on Authorization.
    return article_answer(article, PRIVATE if user else ANONYMOUS_ARTICLE, if_none_match,
                          headers={"Vary": "Authorization"})


@router.put("/articles/{article_id}", response_model=ArticleOut)
def replace_article(article_id: ArticleId, payload: ArticleIn, user: CurrentUser,
                    session: SessionDep, if_match: IfMatch = None) -> Response:
    if if_match is None:
        raise HTTPException(
            status.HTTP_428_PRECONDITION_REQUIRED,
            "Send If-Match with the ETag of the article you read, so that your update can't "
            "erase a change you haven't seen.",
        )
    statement = update(Article).where(Article.id == article_id, Article.author == user)
    opaques = strong_opaques(if_match)
    if opaques is not None:  # "*": any current version will do
        versions = [v for v in (version_in(opaque, article_id) for opaque in opaques)
                    if v is not None]
        # Compare-and-set: the version is checked by the UPDATE, under the row's lock. A
        # concurrent update that got there first has bumped it, so this one matches no row.
        statement = statement.where(Article.version.in_(versions))
    statement = statement.values(
        **payload.model_dump(), version=Article.version + 1, updated_at=func.now()
    ).returning(Article)
    with session.begin():
        article = session.scalars(statement).one_or_none()
    if article is None:
        own_article(session, article_id, user)  # 404 or 403 when that's why
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            "The article changed since you read it (If-Match names an older version). GET it "
            "again, reapply your change, and PUT with its new ETag.",
        )
    return article_answer(article, PRIVATE)


@router.delete("/articles/{article_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_article(article_id: ArticleId, user: CurrentUser, session: SessionDep) -> None:
    session.delete(own_article(session, article_id, user))
    session.commit()
