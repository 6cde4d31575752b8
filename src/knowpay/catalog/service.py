"""Business rules of the catalog. Never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowpay.auth.principals import Principal, Role
from knowpay.catalog import repository
from knowpay.catalog.errors import (
    IllegalProductTransition,
    PriceNotAvailable,
    ProductNotForSale,
    ProductNotFound,
    ProductNotPublishable,
)
from knowpay.catalog.models import Product, ProductPrice
from knowpay.catalog.schemas import ProductCreate, ProductUpdate
from knowpay.catalog.states import ProductKind, ProductStatus, can_transition
from knowpay.kit.errors import Forbidden, Unprocessable
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.pagination import PageParams
from knowpay.kit.schemas import MoneyIn


class CreatorNotFound(Unprocessable):
    code, title = "creator_not_found", "No such creator"


class PersonLookup(Protocol):
    """Filled by the accounts domain at start-up (app.py): a user id → who they are (role,
    app), or None. The catalog sits beside accounts, so it is handed this, not an import."""

    def __call__(self, session: Session, user_id: str) -> Principal | None: ...


def _prices(product_id: str, prices: list[MoneyIn]) -> list[ProductPrice]:
    return [
        ProductPrice(product_id=product_id, currency=p.currency, amount_minor=p.amount)
        for p in prices
    ]


def _ensure_publishable(product: Product) -> None:
    if not product.prices:
        raise ProductNotPublishable("A product needs at least one price before it is published.")
    if product.kind == ProductKind.MEMBERSHIP and not product.period_days:
        raise ProductNotPublishable("A membership needs period_days before it is published.")


def _visible_to(product: Product, caller: Principal) -> bool:
    """Staff see every product. An app, and the people it registered, see the platform's own
    published products and that app's (an app its drafts and archived ones too); another
    app's are not there for them (API.md: an app sees only its own objects)."""
    if caller.is_staff:
        return True
    if product.app_id is not None and product.app_id != caller.app_id:
        return False
    return product.status == ProductStatus.PUBLISHED or (
        caller.is_app and product.app_id == caller.id
    )


_CREATOR_ROLES = frozenset({Role.BUYER.value, Role.CREATOR.value})


def _ensure_creator(
    session: Session, people: PersonLookup, caller: Principal, creator_id: str | None
) -> None:
    """A creator is a person (not staff) and, for an app, one that app registered: another
    app's user is answered exactly as an unknown id (docs/security.md)."""
    if creator_id is None:
        return
    found = people(session, creator_id)
    if (
        found is None
        or found.role.value not in _CREATOR_ROLES
        or (caller.is_app and found.app_id != caller.id)
    ):
        raise CreatorNotFound(f"No such creator: {creator_id}")


def _ensure_may_edit(product: Product, caller: Principal) -> None:
    if caller.role is Role.ADMIN or (caller.is_app and product.app_id == caller.id):
        return
    raise Forbidden("Only the app that created a product, or an admin, may change it.")


def create_product(
    session: Session, caller: Principal, body: ProductCreate, now: datetime, people: PersonLookup
) -> Product:
    """Add a product to the catalog (published unless `status` is draft)."""
    _ensure_creator(session, people, caller, body.creator_id)
    product = Product(
        id=new_id("prod"),
        app_id=caller.id if caller.is_app else None,
        creator_id=body.creator_id,
        title=body.title,
        description=body.description,
        kind=body.kind.value,
        status=body.status,
        period_days=body.period_days,
        created_at=now,
        updated_at=now,
    )
    product.prices = _prices(product.id, body.prices)
    if product.status == ProductStatus.PUBLISHED:
        _ensure_publishable(product)
    try:
        with session.begin_nested():
            repository.add(session, product)
    except IntegrityError as exc:
        raise CreatorNotFound(f"No such creator: {body.creator_id}") from exc
    return product


def get_visible_product(session: Session, caller: Principal, product_id: str) -> Product:
    """A product the caller may see (others' drafts are 404)."""
    product = repository.get(session, product_id)
    if product is None or not _visible_to(product, caller):
        raise ProductNotFound(f"No such product: {product_id}")
    return product


def list_products(
    session: Session, caller: Principal, params: PageParams, *, status: str | None, kind: str | None
) -> tuple[list[Product], bool]:
    """Products the caller may see (`_visible_to`), newest first: staff all; an app its own
    and the platform's published ones; a person the published ones of their app and of the
    platform. `status` narrows that."""
    wanted = frozenset({status}) if status else None
    published = frozenset({ProductStatus.PUBLISHED.value})
    if caller.is_staff:
        return repository.list_products(session, params, statuses=wanted, kind=kind)
    if caller.is_app and status not in (None, ProductStatus.PUBLISHED):
        return repository.list_products(
            session, params, statuses=wanted, kind=kind, only_app_id=caller.id
        )
    also_app_id = caller.id if caller.is_app and status is None else None
    return repository.list_products(
        session,
        params,
        statuses=published & (wanted or published),
        kind=kind,
        also_app_id=also_app_id,
        seen_by_app=caller.app_id or "",
    )


def update_product(
    session: Session, caller: Principal, product_id: str, body: ProductUpdate, now: datetime
) -> Product:
    """Change a product's fields; prices are replaced as a whole."""
    product = repository.get(session, product_id, for_update=True)
    if product is None or not _visible_to(product, caller):
        raise ProductNotFound(f"No such product: {product_id}")
    _ensure_may_edit(product, caller)
    if body.title is not None:
        product.title = body.title
    if body.description is not None:
        product.description = body.description
    if body.period_days is not None:
        product.period_days = body.period_days
    if body.prices is not None:
        product.prices = _prices(product.id, body.prices)
    if product.status == ProductStatus.PUBLISHED:
        _ensure_publishable(product)
    product.updated_at = now
    session.flush()
    return product


def change_status(
    session: Session, caller: Principal, product_id: str, target: ProductStatus, now: datetime
) -> Product:
    """Publish or archive a product, following the lifecycle in states.py."""
    product = repository.get(session, product_id, for_update=True)
    if product is None or not _visible_to(product, caller):
        raise ProductNotFound(f"No such product: {product_id}")
    _ensure_may_edit(product, caller)
    current = ProductStatus(product.status)
    if current == target:
        return product
    if not can_transition(current, target):
        raise IllegalProductTransition(f"A {current} product cannot become {target}.")
    if target == ProductStatus.PUBLISHED:
        _ensure_publishable(product)
    product.status = target.value
    product.updated_at = now
    session.flush()
    return product


def sellable_price(
    session: Session, product_id: str, currency: str, caller: Principal | None = None
) -> tuple[Product, Money]:
    """The published price of a product in a currency, for computing an order's amount.
    Another app's product that `caller` may not see is not found (not "not for sale")."""
    product = repository.get(session, product_id)
    if product is None or (caller is not None and not _visible_to(product, caller)):
        raise ProductNotFound(f"No such product: {product_id}")
    if product.status != ProductStatus.PUBLISHED:
        raise ProductNotForSale(f"Product {product_id} is {product.status}, not on sale.")
    for price in product.prices:
        if price.currency == currency:
            return product, Money(price.amount_minor, price.currency)
    raise PriceNotAvailable(f"Product {product_id} has no price in {currency}.")
