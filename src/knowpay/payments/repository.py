"""Every SQL statement of payments. Never commits."""

from __future__ import annotations

import functools

from sqlalchemy import ScalarSelect, Select, String, bindparam, select, update
from sqlalchemy.orm import Session

from knowpay.kit.pagination import PageParams, page_of
from knowpay.orders.repository import OrderOf
from knowpay.payments.models import Payment


def get(session: Session, payment_id: str, *, for_update: bool = False) -> Payment | None:
    return session.scalars(_select_payment(for_update), {"payment_id": payment_id}).first()


@functools.cache
def _select_payment(for_update: bool) -> Select[Payment]:
    """Built once (see `kit.db.insert_unless_present`), as the other hot statements here."""
    statement = select(Payment).where(Payment.id == bindparam("payment_id", type_=String))
    if for_update:
        # Re-read under the lock: what the session held before may be stale.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return statement


def order_id_of(payment_id: str) -> OrderOf:
    """The payment's order, named by a subquery: its order is locked in one round trip."""
    return OrderOf(_order_id_of_payment(), {"payment_id": payment_id})


@functools.cache
def _order_id_of_payment() -> ScalarSelect[str]:
    payment_id = bindparam("payment_id", type_=String)
    return select(Payment.order_id).where(Payment.id == payment_id).scalar_subquery()


def holder_of_gateway_trade_no(session: Session, channel: str, gateway_trade_no: str) -> str | None:
    """The payment that already carries this gateway trade number on this channel, if any."""
    params = {"channel": channel, "gateway_trade_no": gateway_trade_no}
    return session.scalars(_select_holder_of_gateway_trade_no(), params).first()


@functools.cache
def _select_holder_of_gateway_trade_no() -> Select[str]:
    return select(Payment.id).where(
        Payment.channel == bindparam("channel", type_=String),
        Payment.gateway_trade_no == bindparam("gateway_trade_no", type_=String),
    )


def pending_for_order(
    session: Session, order_id: str, *, for_update: bool = False
) -> list[Payment]:
    return list(session.scalars(_select_pending_for_order(for_update), {"order_id": order_id}))


@functools.cache
def _select_pending_for_order(for_update: bool) -> Select[Payment]:
    statement = (
        select(Payment)
        .where(Payment.order_id == bindparam("order_id", type_=String), Payment.status == "pending")
        .order_by(Payment.id)
    )
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return statement


def succeeded(session: Session) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.status == "succeeded")).all())


def for_order(session: Session, order_id: str) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment).where(Payment.order_id == order_id).order_by(Payment.id)
        ).all()
    )


def unrefunded_duplicates(session: Session, limit: int) -> list[Payment]:
    statement = (
        select(Payment)
        .where(
            Payment.is_duplicate.is_(True),
            Payment.status == "succeeded",
            Payment.duplicate_refund_id.is_(None),
        )
        .order_by(Payment.id)
        .limit(limit)
    )
    return list(session.scalars(statement).all())


def claim_duplicate(session: Session, payment_id: str, refund_id: str) -> bool:
    result = session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.duplicate_refund_id.is_(None))
        .values(duplicate_refund_id=refund_id)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def list_duplicates(session: Session, params: PageParams) -> tuple[list[Payment], bool]:
    statement = select(Payment).where(Payment.is_duplicate.is_(True))
    return page_of(session, statement, Payment.id, params)
