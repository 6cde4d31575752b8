"""Business rules of orders: amounts from the catalog, the merchant's order number, expiry,
and every status change through the state table. Never commits."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowpay.accounts import service as accounts
from knowpay.accounts.errors import UserNotFound
from knowpay.accounts.models import User
from knowpay.audit import service as audit
from knowpay.auth.principals import Principal
from knowpay.auth.scoping import can_see
from knowpay.catalog import service as catalog
from knowpay.kit.config import WalletSettings
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.pagination import PageParams
from knowpay.kit.schemas import MAX_AMOUNT_MINOR
from knowpay.orders import repository
from knowpay.orders.errors import (
    BuyerNotFound,
    OrderNotFound,
    OrderTooLarge,
    OutTradeNoConflict,
    OutTradeNoNotYours,
)
from knowpay.orders.models import Order, OrderItem, OrderKind
from knowpay.orders.schemas import OrderCreate, TopUpCreate
from knowpay.orders.states import OrderStatus, next_status
from knowpay.wallet import service as wallet


def _fingerprint(body: OrderCreate) -> str:
    content = {
        "user_id": body.user_id,
        "currency": body.currency,
        "items": [[item.product_id, item.quantity] for item in body.items],
        "metadata": body.metadata,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _priced_items(
    session: Session, order_id: str, body: OrderCreate, caller: Principal, share_bps: int
) -> tuple[list[OrderItem], Money]:
    items: list[OrderItem] = []
    total = Money.zero(body.currency)
    for line_no, line in enumerate(body.items, start=1):
        product, unit = catalog.sellable_price(session, line.product_id, body.currency, caller)
        amount = unit * line.quantity
        total += amount
        items.append(
            OrderItem(
                order_id=order_id,
                line_no=line_no,
                product_id=product.id,
                title=product.title,
                kind=product.kind,
                period_days=product.period_days,
                quantity=line.quantity,
                unit_amount_minor=unit.amount_minor,
                amount_minor=amount.amount_minor,
                creator_id=product.creator_id,
                creator_share_bps=share_bps if product.creator_id else None,
            )
        )
    return items, total


def create_order(
    session: Session,
    caller: Principal,
    body: OrderCreate,
    now: datetime,
    *,
    creator_share_bps: int,
) -> tuple[Order, bool]:
    """Create an order (amount from the published prices, each creator's share in force
    now kept with their lines); returns (order, created).

    A repeated `out_trade_no` with the same content returns the existing order
    (created=False); with different content it is OutTradeNoConflict."""
    if body.out_trade_no is not None:
        existing = repository.by_out_trade_no(session, caller.id, body.out_trade_no)
        if existing is not None:
            return _same_or_conflict(existing, _fingerprint(body)), False
    try:
        buyer = accounts.get_user(session, body.user_id)
    except UserNotFound:
        buyer = None
    if buyer is None or buyer.app_id != caller.id:
        raise BuyerNotFound(f"No buyer {body.user_id} registered by this app.")
    order_id = new_id("ord")
    items, total = _priced_items(session, order_id, body, caller, creator_share_bps)
    if total.amount_minor > MAX_AMOUNT_MINOR:
        # Every amount knowpay takes (a price, a refund, a limit) stops there.
        raise OrderTooLarge(
            f"The order's total {total} is more than {MAX_AMOUNT_MINOR} minor units."
        )
    order = Order(
        id=order_id,
        app_id=caller.id,
        user_id=buyer.id,
        out_trade_no=body.out_trade_no or order_id,
        fingerprint=_fingerprint(body),
        currency=total.currency,
        amount_minor=total.amount_minor,
        refunded_minor=0,
        status=OrderStatus.CREATED.value,
        subject=_subject(items),
        metadata_json=json.dumps(body.metadata, ensure_ascii=False, sort_keys=True),
        expires_at=now + timedelta(seconds=body.expires_in),
        created_at=now,
        updated_at=now,
    )
    order.items = items
    return _insert(session, order, body.out_trade_no)


def _insert(session: Session, order: Order, out_trade_no: str | None) -> tuple[Order, bool]:
    """Insert a new order; with the merchant's own number, the order another request just
    inserted under it instead (if the same content; OutTradeNoConflict if not)."""
    if out_trade_no is None:  # knowpay's own id: nothing else can hold it, no savepoint
        session.add(order)
        session.flush()
        return order, True
    try:
        with session.begin_nested():
            session.add(order)
            session.flush()
    except IntegrityError:
        # Another request inserted the same out_trade_no first.
        existing = repository.by_out_trade_no(session, order.app_id, out_trade_no)
        if existing is None:
            raise
        return _same_or_conflict(existing, order.fingerprint), False
    return order, True


def _same_or_conflict(existing: Order, fingerprint: str) -> Order:
    if existing.fingerprint != fingerprint:
        raise OutTradeNoConflict(
            f"out_trade_no {existing.out_trade_no} already names order {existing.id} "
            "with other content.",
            order_id=existing.id,
        )
    return existing


TOP_UP_SUBJECT = "Knowledge coins top-up"
"""What the gateway shows the payer of a top-up."""


def create_top_up(
    session: Session,
    caller: Principal,
    body: TopUpCreate,
    settings: WalletSettings,
    now: datetime,
) -> tuple[Order, bool]:
    """Create a top-up order for the amount asked (within the wallet's bounds); returns
    (order, created), a repeated `out_trade_no` as `create_order` treats it."""
    if body.out_trade_no is not None and not caller.is_app:
        # The number is the app's own (unique per app): a buyer may not take one, nor learn
        # which the app has used.
        raise OutTradeNoNotYours(
            "Only the app names its orders with out_trade_no.",
            errors=[
                {
                    "field": "out_trade_no",
                    "in": "body",
                    "message": "set by the app only",
                    "type": "not_allowed",
                }
            ],
        )
    buyer = buyer_named_by(session, caller, body.user_id)
    app_id = buyer.app_id or ""
    fingerprint = _top_up_fingerprint(buyer.id, body)
    if body.out_trade_no is not None:
        existing = repository.by_out_trade_no(session, app_id, body.out_trade_no)
        if existing is not None:
            return _same_or_conflict(existing, fingerprint), False
    amount = Money(body.amount, body.currency)
    wallet.check_top_up(
        session,
        settings,
        buyer.id,
        amount,
        lambda: repository.top_ups_awaiting_payment(session, buyer.id, amount.currency, now),
        now,
    )
    order_id = new_id("ord")
    order = Order(
        id=order_id,
        app_id=app_id,
        user_id=buyer.id,
        out_trade_no=body.out_trade_no or order_id,
        kind=OrderKind.TOP_UP.value,
        fingerprint=fingerprint,
        currency=amount.currency,
        amount_minor=amount.amount_minor,
        refunded_minor=0,
        status=OrderStatus.CREATED.value,
        subject=TOP_UP_SUBJECT,
        metadata_json=json.dumps(body.metadata, ensure_ascii=False, sort_keys=True),
        expires_at=now + timedelta(seconds=body.expires_in),
        created_at=now,
        updated_at=now,
    )
    order.items = []
    return _insert(session, order, body.out_trade_no)


def buyer_named_by(session: Session, caller: Principal, user_id: str | None) -> User:
    """The buyer a request is for (a top-up's, a subscription's): an app names one of its
    own, a buyer is it; anyone else is 422 `user_not_found`."""
    if caller.is_app and user_id is None:
        raise BuyerNotFound("Give user_id: the buyer the request is for.")
    wanted = caller.id if user_id is None else user_id
    try:
        buyer = accounts.get_buyer(session, wanted)
    except UserNotFound:
        buyer = None
    owner_app = caller.id if caller.is_app else None
    mine = buyer is not None and (
        buyer.app_id == owner_app if caller.is_app else buyer.id == caller.id
    )
    if buyer is None or not mine or buyer.app_id is None:
        raise BuyerNotFound(f"No buyer {wanted} of yours.")
    return buyer


def _top_up_fingerprint(user_id: str, body: TopUpCreate) -> str:
    content = {
        "kind": OrderKind.TOP_UP.value,
        "user_id": user_id,
        "amount": body.amount,
        "currency": body.currency,
        "metadata": body.metadata,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def is_top_up(order: Order) -> bool:
    """Whether the order fills the buyer's wallet (rather than buying content)."""
    return order.kind == OrderKind.TOP_UP


def _subject(items: list[OrderItem]) -> str:
    first = items[0].title
    return first if len(items) == 1 else f"{first} +{len(items) - 1}"


def get_visible(
    session: Session, caller: Principal, order_id: str, *, for_update: bool = False
) -> Order:
    """An order the caller may see (404 otherwise)."""
    order = repository.get(session, order_id, for_update=for_update)
    if order is None or not can_see(caller, owner_app_id=order.app_id, owner_user_id=order.user_id):
        raise OrderNotFound(f"No such order: {order_id}")
    return order


def lock(session: Session, order_id: str | repository.OrderOf) -> Order:
    """The order row, locked for the rest of the transaction (`order_id` may be a subquery)."""
    order = repository.get(session, order_id, for_update=True)
    if order is None:
        # A subquery names no id worth telling (and its SQL is nobody's business).
        named = f": {order_id}" if isinstance(order_id, str) else "."
        raise OrderNotFound(f"No such order{named}")
    return order


def list_orders(
    session: Session,
    caller: Principal,
    params: PageParams,
    *,
    user_id: str | None,
    status: str | None,
    kind: str | None = None,
) -> tuple[list[Order], bool]:
    """Orders the caller may see, newest first (of one status and kind, when given)."""
    if caller.is_staff:
        app_id = None
    elif caller.is_app:
        app_id = caller.id
    elif user_id not in (None, caller.id):
        return [], False
    else:
        app_id, user_id = None, caller.id
    return repository.list_orders(
        session, params, app_id=app_id, user_id=user_id, status=status, kind=kind
    )


def mark_paid(order: Order, payment_id: str, now: datetime) -> None:
    """created → paid by one payment."""
    order.status = next_status(order.status, OrderStatus.PAID).value
    order.paid_payment_id = payment_id
    order.paid_at = now
    order.updated_at = now


def extend_expiry(order: Order, until: datetime, now: datetime) -> None:
    """An unpaid order stays payable until `until` (an expiry is never brought forward)."""
    if until > order.expires_at:
        order.expires_at = until
        order.updated_at = now


def mark_closed(order: Order, now: datetime) -> None:
    """created → closed."""
    order.status = next_status(order.status, OrderStatus.CLOSED).value
    order.closed_at = now
    order.updated_at = now


def record_status_change(session: Session, order: Order, before: str, now: datetime) -> None:
    """An order's status change in the audit log (in the transaction that made it)."""
    audit.record(
        session,
        action=f"order.{order.status}",
        object_type="order",
        object_id=order.id,
        before={"status": before},
        after={
            "status": order.status,
            "amount": order.amount_minor,
            "refunded": order.refunded_minor,
            "currency": order.currency,
        },
        now=now,
    )


def is_expired(order: Order, now: datetime) -> bool:
    return order.expires_at <= now


CLOSING_HOLD = timedelta(seconds=60)
"""How long a close's mark keeps payments from starting; past it, the close has died (a
crash between asking the gateways and closing) and the order is payable again."""


def is_closing(order: Order, now: datetime) -> bool:
    """Whether a close is asking the gateways about the order's attempts right now."""
    return order.closing_since is not None and now - order.closing_since < CLOSING_HOLD


def due_for_expiry(session: Session, now: datetime, limit: int = 100) -> list[str]:
    """Ids of unpaid orders whose time is up."""
    return repository.due_for_expiry(session, now, limit)


def all_orders(session: Session) -> list[Order]:
    """Every order (for the integrity check)."""
    return repository.all_for_check(session)
