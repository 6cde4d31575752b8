"""Every SQL statement of orders. Never commits."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, func, select
from sqlalchemy.orm import Session, joinedload

from knowpay.kit.pagination import PageParams, page_of
from knowpay.orders.models import Order


@dataclass(frozen=True, slots=True)
class OrderOf:
    """An order named by a subquery (the order of a payment, say): `expression` is built once
    and kept, `params` bind it for one call."""

    expression: ColumnElement[str]
    params: Mapping[str, Any]


def get(session: Session, order_id: str | OrderOf, *, for_update: bool = False) -> Order | None:
    """The order with its items in one statement (a join, not a second SELECT: orders are
    read on every payment step); `for_update` locks the order row only. `order_id` may name
    it by a subquery (the order of a payment), which saves a round trip."""
    if isinstance(order_id, OrderOf):
        statement = _select_order(order_id.expression, for_update)
        params = dict(order_id.params)
    else:
        statement, params = _select_order(None, for_update), {"order_id": order_id}
    return session.scalars(statement, params).unique().one_or_none()


# Keyed by the expression object itself: bounded, like `kit.pagination._paginated`.
@functools.lru_cache(maxsize=16)
def _select_order(key: ColumnElement[str] | None, for_update: bool) -> Select[Order]:
    """Built once per shape (see `kit.db.insert_unless_present`); `key` None: by id."""
    order_id = bindparam("order_id", type_=String) if key is None else key
    statement = select(Order).where(Order.id == order_id).options(joinedload(Order.items))
    if for_update:
        # Re-read under the lock: what the session held before may be stale.
        statement = statement.with_for_update(of=Order).execution_options(populate_existing=True)
    return statement


def by_out_trade_no(session: Session, app_id: str, out_trade_no: str) -> Order | None:
    statement = select(Order).where(Order.app_id == app_id, Order.out_trade_no == out_trade_no)
    return session.scalars(statement).first()


def list_orders(
    session: Session,
    params: PageParams,
    *,
    app_id: str | None,
    user_id: str | None,
    status: str | None,
    kind: str | None = None,
) -> tuple[list[Order], bool]:
    statement = select(Order)
    if kind is not None:
        statement = statement.where(Order.kind == kind)
    if app_id is not None:
        statement = statement.where(Order.app_id == app_id)
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    return page_of(session, statement, Order.id, params)


def top_ups_awaiting_payment(session: Session, user_id: str, currency: str, now: datetime) -> int:
    """The sum of the buyer's top-up orders in a currency that may still be paid."""
    total = session.scalar(
        select(func.coalesce(func.sum(Order.amount_minor), 0)).where(
            Order.user_id == user_id,
            Order.currency == currency,
            Order.kind == "top_up",
            Order.status == "created",
            Order.expires_at > now,
        )
    )
    return int(total or 0)


def due_for_expiry(session: Session, now: datetime, limit: int) -> list[str]:
    statement = (
        select(Order.id)
        .where(Order.status == "created", Order.expires_at <= now)
        .order_by(Order.expires_at)
        .limit(limit)
    )
    return list(session.scalars(statement).all())


def all_for_check(session: Session) -> list[Order]:
    return list(session.scalars(select(Order)).all())
