"""The JSON shapes of the products API. Pydantic validates them before any SQL runs."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def reject_nul(value: str) -> str:
    # Postgres text cannot hold U+0000; refusing it here makes it a 422, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class ProductIn(BaseModel):
    """What a client sends to replace a product (PUT)."""

    name: Annotated[str, AfterValidator(reject_nul), Field(min_length=1, max_length=200)]
    price_cents: Annotated[int, Field(ge=0, le=100_000_000)]


class ProductOut(ProductIn):
    """What the API answers with: a stored product."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    updated_at: datetime
