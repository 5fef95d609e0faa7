"""The JSON shapes of the posts API. Pydantic validates them at the edge, before any SQL runs."""

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


class PostIn(BaseModel):
    """What a client sends to create (POST) or replace (PUT) a post."""

    title: Annotated[Text, Field(min_length=1, max_length=200)]
    content: Text = ""
    category: Text = ""
    tags: list[str] = Field(default_factory=list)


class PostOut(PostIn):
    """What the API answers with: a stored post."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    updated_at: datetime
