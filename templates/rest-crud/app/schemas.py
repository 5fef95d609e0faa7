"""The JSON shapes of the posts API. Pydantic validates them at the edge, before any SQL runs."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PostIn(BaseModel):
    """What a client sends to create (POST) or replace (PUT) a post."""

    # TODO: enforce the contract in README.md. A title is required and holds 1 to 200
    # characters, and no string (title, content, category, any tag) may contain a NUL
    # character ("\x00"): Postgres text cannot store it. Field(...) and AfterValidator help.
    title: str
    content: str = ""
    category: str = ""
    tags: list[str] = Field(default_factory=list)


class PostOut(PostIn):
    """What the API answers with: a stored post."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    updated_at: datetime
