"""Weather from a slow origin, and products from the database. Nothing is cached yet.

Every GET /weather/{city} waits for the origin (hundreds of milliseconds), and every
GET /products/{id} queries Postgres. Put Redis in front of both, cache-aside: README.md has
the contract, the lesson (`bb lesson`) the why.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from sqlalchemy import func
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import Product
from app.origin import fetch_weather
from app.schemas import ProductIn, ProductOut

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]
#: A city is one path segment: letters first, then letters, digits, spaces, . ' and -.
City = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9 .'-]{0,63}$")]
#: Ids are BIGINT: anything outside this range is a 422 before any SQL runs.
ProductId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/weather/{city}", tags=["weather"])
def get_weather(city: City) -> Response:
    # TODO: cache-aside. Look in Redis first (X-Cache: HIT); on a miss ask the origin, store its
    # answer with a TTL of CACHE_TTL_SECONDS, and answer it (X-Cache: MISS). Let one request
    # refill a cold key while the others wait for it (a stampede of 50 requests must not
    # become 50 origin calls). When Redis is down, serve from the origin (X-Cache: BYPASS).
    # TODO: an origin failure raises OriginError, which ends here as a 500. It is the
    # origin's fault, not ours: answer 502 Bad Gateway, and never cache it.
    body = fetch_weather(city)
    return Response(body, media_type="application/json")


def load_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no product {product_id}.")
    return product


@router.get("/products/{product_id}", tags=["products"])
def get_product(product_id: ProductId, session: SessionDep) -> Response:
    # TODO: cache-aside here too (X-Cache: HIT or MISS or BYPASS), with the same TTL.
    product = ProductOut.model_validate(load_product(session, product_id))
    return Response(product.model_dump_json(), media_type="application/json")


@router.put("/products/{product_id}", tags=["products"])
def replace_product(product_id: ProductId, payload: ProductIn, session: SessionDep) -> ProductOut:
    # TODO: once GET serves products from the cache, this write leaves the old copy there and
    # readers see the old price until it expires. Invalidate the entry, and mind when.
    product = load_product(session, product_id)
    product.name = payload.name
    product.price_cents = payload.price_cents
    product.updated_at = func.now()
    session.commit()
    session.refresh(product)
    return ProductOut.model_validate(product)
