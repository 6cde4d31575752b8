"""Every SQL statement of the catalog. Never commits."""

from __future__ import annotations

import functools

from sqlalchemy import Select, String, bindparam, or_, select
from sqlalchemy.orm import Session, joinedload

from knowpay.catalog.models import Product
from knowpay.kit.pagination import PageParams, page_of


def add(session: Session, product: Product) -> None:
    session.add(product)
    session.flush()


def get(session: Session, product_id: str, *, for_update: bool = False) -> Product | None:
    """The product with its prices in one statement (every order line prices one);
    `for_update` locks the product row only."""
    statement = _select_product(for_update)
    return session.scalars(statement, {"product_id": product_id}).unique().one_or_none()


@functools.cache
def _select_product(for_update: bool) -> Select[Product]:
    """Built once (see `kit.db.insert_unless_present`)."""
    product_id = bindparam("product_id", type_=String)
    statement = select(Product).where(Product.id == product_id).options(joinedload(Product.prices))
    return statement.with_for_update(of=Product) if for_update else statement


def list_products(
    session: Session,
    params: PageParams,
    *,
    statuses: frozenset[str] | None,
    kind: str | None,
    only_app_id: str | None = None,
    also_app_id: str | None = None,
    seen_by_app: str | None = None,
) -> tuple[list[Product], bool]:
    """Products newest first, in `statuses` (all when None), of `only_app_id` when given,
    plus every product of `also_app_id` whatever its status; with `seen_by_app`, only that
    app's and the platform's own (no app's)."""
    statement = select(Product)
    if seen_by_app is not None:
        statement = statement.where(or_(Product.app_id == seen_by_app, Product.app_id.is_(None)))
    if statuses is not None:
        in_status = Product.status.in_(statuses)
        statement = statement.where(
            or_(in_status, Product.app_id == also_app_id) if also_app_id else in_status
        )
    if only_app_id is not None:
        statement = statement.where(Product.app_id == only_app_id)
    if kind is not None:
        statement = statement.where(Product.kind == kind)
    return page_of(session, statement, Product.id, params)
