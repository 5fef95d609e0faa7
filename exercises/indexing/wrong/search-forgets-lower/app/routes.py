"""The shop API: a customer's orders, a customer by email, and product search.

The queries are the starter's: what made them slow was the missing indexes, which
alembic/versions/0002_indexes.py builds. Each comment names the index that answers its query.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import Customer, Order, Product
from app.schemas import CustomerOut, OrderOut, ProductOut

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]


@router.get("/orders")
def list_orders(
    session: SessionDep,
    customer_id: int,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[OrderOut]:
    """A customer's orders, newest first (id breaks ties)."""
    query = select(Order).where(Order.customer_id == customer_id)
    if status is not None:
        query = query.where(Order.status == status)
    # ix_orders_customer_status_created (customer_id, status, created_at DESC, id DESC): the
    # newest `limit` orders are consecutive entries. Without status, the same index narrows to
    # the customer, and Postgres sorts only that customer's orders.
    query = query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)
    return [OrderOut.model_validate(order) for order in session.scalars(query)]


@router.get("/customers/by-email")
def customer_by_email(session: SessionDep, email: str) -> CustomerOut:
    """The customer with this email, whatever its case: "ADA@example.com" finds "Ada@Example.com"."""
    # ix_customers_lower_email indexes exactly this expression, lower(email).
    customer = session.scalars(
        select(Customer).where(func.lower(Customer.email) == func.lower(email))
    ).first()
    if customer is None:
        raise HTTPException(404, "No customer has this email.")
    return CustomerOut.model_validate(customer)


@router.get("/products/search")
def search_products(
    session: SessionDep,
    q: Annotated[str, Query(min_length=3, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[ProductOut]:
    """Products whose name contains q, in any case, by id."""
    # q is a literal substring: % and _ in it are not wildcards.
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # lower(name), to match the trigram index on lower(name); but q is not lowered.
    query = (
        select(Product).where(func.lower(Product.name).like(pattern))
        .order_by(Product.id).limit(limit)
    )
    return [ProductOut.model_validate(product) for product in session.scalars(query)]
