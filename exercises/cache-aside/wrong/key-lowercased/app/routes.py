"""Weather from a slow origin, and products from the database, both cache-aside in Redis."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from sqlalchemy import func
from sqlalchemy.orm import Session

from app.cache import cached, invalidate
from app.db import get_session
from app.models import Product
from app.origin import OriginError, fetch_weather
from app.schemas import ProductIn, ProductOut

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]
#: A city is one path segment: letters first, then letters, digits, spaces, . ' and -.
City = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9 .'-]{0,63}$")]
#: Ids are BIGINT: anything outside this range is a 422 before any SQL runs.
ProductId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def weather_key(city: str) -> str:
    # The city exactly as the origin is asked for it: "Paris" and "paris" are two entries.
    return f"weather:{city.lower()}"


def product_key(product_id: int) -> str:
    return f"product:{product_id}"


@router.get("/weather/{city}", tags=["weather"])
def get_weather(city: City) -> Response:
    try:
        body, outcome = cached(weather_key(city), lambda: fetch_weather(city))
    except OriginError as exc:
        # The origin's failure, not ours: 502, and nothing was cached.
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"The weather service failed: {exc}."
        ) from exc
    return Response(body, media_type="application/json", headers={"X-Cache": outcome})


def load_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no product {product_id}.")
    return product


@router.get("/products/{product_id}", tags=["products"])
def get_product(product_id: ProductId, session: SessionDep) -> Response:
    def load() -> str:
        # A 404 raises here, so it is never cached either.
        return ProductOut.model_validate(load_product(session, product_id)).model_dump_json()

    body, outcome = cached(product_key(product_id), load)
    return Response(body, media_type="application/json", headers={"X-Cache": outcome})


@router.put("/products/{product_id}", tags=["products"])
def replace_product(product_id: ProductId, payload: ProductIn, session: SessionDep) -> ProductOut:
    product = load_product(session, product_id)
    product.name = payload.name
    product.price_cents = payload.price_cents
    product.updated_at = func.now()
    session.commit()
    # After the commit, never before: a reader that misses in between would read the old row
    # and put it back in the cache, where it would stay until it expires.
    invalidate(product_key(product_id))
    session.refresh(product)
    return ProductOut.model_validate(product)
