"""Every SQL statement of subscriptions. Never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from knowpay.kit.pagination import PageParams, page_of
from knowpay.orders.models import Order
from knowpay.orders.states import OrderStatus
from knowpay.subscriptions.models import Subscription

LIVE = ("active", "past_due")


def get(session: Session, subscription_id: str, *, for_update: bool = False) -> Subscription | None:
    statement = select(Subscription).where(Subscription.id == subscription_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalars(statement).first()


def lock_unless_taken(session: Session, subscription_id: str) -> Subscription | None:
    """The row locked, or None when another process holds it (it is renewing it now)."""
    statement = (
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.scalars(statement).first()


def live_one(session: Session, user_id: str, product_id: str) -> Subscription | None:
    return session.scalars(
        select(Subscription).where(
            Subscription.user_id == user_id, Subscription.live_product_id == product_id
        )
    ).first()


PAID_ORDER = (OrderStatus.PAID.value, OrderStatus.PARTIALLY_REFUNDED.value)


def due(session: Session, now: datetime, limit: int) -> list[str]:
    """Live subscriptions whose next action is due, the longest waiting first, and failing
    ones whose renewal order the buyer has just paid at the cashier."""
    renewal_paid = (
        select(Order.id)
        .where(Order.id == Subscription.latest_order_id, Order.status.in_(PAID_ORDER))
        .exists()
    )
    return list(
        session.scalars(
            select(Subscription.id)
            .where(
                Subscription.status.in_(LIVE),
                or_(
                    Subscription.next_attempt_at <= now,
                    and_(Subscription.status == "past_due", renewal_paid),
                ),
            )
            .order_by(Subscription.next_attempt_at)
            .limit(limit)
        )
    )


def to_remind(session: Session, until: datetime, limit: int) -> list[str]:
    """Active subscriptions whose renewal is charged before `until` and whose app was not
    yet told of it."""
    return list(
        session.scalars(
            select(Subscription.id)
            .where(
                Subscription.status == "active",
                Subscription.cancel_at_period_end.is_(False),
                Subscription.next_attempt_at <= until,
                or_(
                    Subscription.reminded_for.is_(None),
                    Subscription.reminded_for != Subscription.current_period_end,
                ),
            )
            .order_by(Subscription.next_attempt_at)
            .limit(limit)
        )
    )


def listed(
    session: Session,
    params: PageParams,
    *,
    app_id: str | None,
    user_id: str | None,
    status: str | None,
) -> tuple[list[Subscription], bool]:
    statement = select(Subscription)
    if app_id is not None:
        statement = statement.where(Subscription.app_id == app_id)
    if user_id is not None:
        statement = statement.where(Subscription.user_id == user_id)
    if status is not None:
        statement = statement.where(Subscription.status == status)
    return page_of(session, statement, Subscription.id, params)
