"""The JSON shapes of the articles API. Pydantic validates them before any SQL runs."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def reject_nul(value: str) -> str:
    # Postgres text cannot hold U+0000; refusing it here makes it a 422, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: A string Postgres can store.
Text = Annotated[str, AfterValidator(reject_nul)]


class ArticleIn(BaseModel):
    """What a client sends to create (POST) or replace (PUT) an article."""

    title: Annotated[Text, Field(min_length=1, max_length=200)]
    body: Text = ""
    published: bool = False


class ArticleOut(ArticleIn):
    """What the API answers with: a stored article."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    author: str
    created_at: datetime
    updated_at: datetime
