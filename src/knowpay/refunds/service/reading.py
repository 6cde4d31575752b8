"""Refunds: getting, locking and listing them, and their timelines."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowpay.auth.principals import Principal
from knowpay.auth.scoping import can_see
from knowpay.kit.pagination import PageParams, page_of
from knowpay.orders import service as orders
from knowpay.refunds.errors import RefundNotFound
from knowpay.refunds.models import Refund, RefundTimelineEntry
from knowpay.refunds.states import OPEN


def timeline(session: Session, refund_id: str) -> list[RefundTimelineEntry]:
    statement = select(RefundTimelineEntry).where(RefundTimelineEntry.refund_id == refund_id)
    return list(session.scalars(statement.order_by(RefundTimelineEntry.id)).all())


def open_amount(session: Session, order_id: str) -> int:
    """What open refunds of an order's own payment hold (pending approval or processing)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.order_id == order_id,
            Refund.kind == "request",
            Refund.status.in_([s.value for s in OPEN]),
        )
    )
    return int(total or 0)


def lock_with_order(session: Session, refund_id: str) -> Refund:
    """Lock the refund's order, then the refund: the order every refund flow locks in."""
    orders.lock(session, get(session, refund_id).order_id)
    return lock(session, refund_id)


def lock(session: Session, refund_id: str) -> Refund:
    refund = session.scalars(
        select(Refund)
        .where(Refund.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if refund is None:
        raise RefundNotFound(f"No such refund: {refund_id}")
    return refund


def get(session: Session, refund_id: str) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise RefundNotFound(f"No such refund: {refund_id}")
    return refund


def by_out_refund_no(session: Session, out_refund_no: str) -> Refund | None:
    return session.scalars(select(Refund).where(Refund.out_refund_no == out_refund_no)).first()


def get_visible(session: Session, caller: Principal, refund_id: str) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None or not can_see(
        caller, owner_app_id=refund.app_id, owner_user_id=refund.user_id
    ):
        raise RefundNotFound(f"No such refund: {refund_id}")
    return refund


def list_refunds(
    session: Session,
    caller: Principal,
    params: PageParams,
    *,
    order_id: str | None,
    status: str | None,
) -> tuple[list[Refund], bool]:
    statement = select(Refund)
    if caller.is_app:
        statement = statement.where(Refund.app_id == caller.id)
    elif not caller.is_staff:
        statement = statement.where(Refund.user_id == caller.id)
    if order_id is not None:
        statement = statement.where(Refund.order_id == order_id)
    if status is not None:
        statement = statement.where(Refund.status == status)
    return page_of(session, statement, Refund.id, params)
