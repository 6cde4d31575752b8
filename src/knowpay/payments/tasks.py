"""Scheduled jobs of payments: expire orders, ask gateways about silent payments, close
abandoned attempts at their gateways, remind buyers before an order expires.

Each job claims its work item by item with a conditional update, SKIP LOCKED or (expiry)
the order's closing mark, so any number of workers can run them at once without doing an
item twice; gateway calls happen with no transaction open."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert_once
from knowpay.channels.errors import ChannelError
from knowpay.channels.types import ChannelStatus, PaymentQueryResult
from knowpay.kit.clock import Clock
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.kit.outbox import emit
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.orders.schemas import OrderOut
from knowpay.orders.states import OrderStatus
from knowpay.payments import service
from knowpay.payments.models import Payment
from knowpay.payments.states import PaymentStatus
from knowpay.risk import service as risk
from knowpay.risk.models import RiskDecision
from knowpay.risk.states import ReviewStatus

logger = logging.getLogger("knowpay.jobs")


@dataclass(frozen=True, slots=True)
class JobContext:
    database: Database
    payments: service.PaymentsContext
    clock: Clock
    query_after: timedelta = timedelta(seconds=60)
    """A pending payment is asked about once it is this old without news."""
    reminder_lead: timedelta = timedelta(minutes=5)
    """How long before expiry an unpaid order's reminder goes out."""
    batch_size: int = 50


def backoff(attempts: int, *, base_s: float = 30.0, cap_s: float = 3600.0) -> timedelta:
    """30 s, 1 min, 2 min … capped at an hour."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** max(attempts - 1, 0)))


# Expiry ------------------------------------------------------------------------------------


def expire_orders(ctx: JobContext) -> int:
    """Close unpaid orders whose time is up, and their pending attempts at the gateways."""
    with ctx.database.session_scope(read_only=True) as session:
        now = ctx.clock.now()
        due = orders.due_for_expiry(session, now, ctx.batch_size)
    closed = 0
    for order_id in due:
        try:
            with ctx.database.session_scope() as session:
                closed += _expire_one(session, ctx, order_id)
        except (KnowpayError, ChannelError) as exc:
            logger.warning("order %s not expired yet: %s", order_id, exc)
    return closed


def _expire_one(session: Session, ctx: JobContext, order_id: str) -> int:
    statement = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    if ctx.database.dialect == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    else:
        statement = statement.with_for_update()
    order = session.scalars(statement).first()
    now = ctx.clock.now()
    if order is None or order.status != OrderStatus.CREATED or order.expires_at > now:
        return 0  # another worker has it, or it changed meanwhile
    if orders.is_closing(order, now):
        return 0  # a close (another worker's, or the app's) is asking the gateways
    closed = service.close_order(session, ctx.payments, order, now)
    return 1 if closed.status == OrderStatus.CLOSED else 0


# Active query ------------------------------------------------------------------------------


def _claim(
    session: Session,
    payment_id: str,
    column: str,
    attempts_column: str,
    due_before: datetime,
    next_at: datetime,
) -> bool:
    """Take one item with a conditional update: only one worker's update matches."""
    due_column = getattr(Payment, column)
    result = session.execute(
        update(Payment)
        .where(Payment.id == payment_id, or_(due_column.is_(None), due_column <= due_before))
        .values({column: next_at, attempts_column: getattr(Payment, attempts_column) + 1})
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def query_silent_payments(ctx: JobContext) -> int:
    """Ask the gateway about pending payments whose notification has not come, with backoff."""
    now = ctx.clock.now()
    with ctx.database.session_scope(read_only=True) as session:
        candidates = session.execute(
            select(Payment.id, Payment.query_attempts)
            .where(
                Payment.status == PaymentStatus.PENDING,
                Payment.created_at <= now - ctx.query_after,
                or_(Payment.next_query_at.is_(None), Payment.next_query_at <= now),
            )
            .order_by(Payment.created_at)
            .limit(ctx.batch_size)
        ).all()
    settled = 0
    for payment_id, attempts in candidates:
        with ctx.database.session_scope() as session:
            if not _claim(
                session,
                payment_id,
                "next_query_at",
                "query_attempts",
                now,
                now + backoff(attempts + 1),
            ):
                continue
            payment = session.get(Payment, payment_id)
        if payment is None:  # pragma: no cover - payments are never deleted
            continue
        try:
            result = service.query_gateway(ctx.payments, payment)
            with ctx.database.session_scope() as session:
                after = service.apply_query_result(session, payment_id, result, ctx.clock.now())
                settled += after.status != PaymentStatus.PENDING
        except (KnowpayError, ChannelError) as exc:
            logger.warning("query of %s failed; will retry: %s", payment_id, exc)
    return settled


# Reviews of attempts that closed first -----------------------------------------------------


def close_moot_reviews(ctx: JobContext) -> int:
    """Take out of the staff's queue the reviews whose held attempt closed before anyone
    decided (its order expired or was closed, another attempt paid it): there is nothing to
    release. A review staff are deciding at this moment is left to them."""
    with ctx.database.session_scope(read_only=True) as session:
        moot = session.execute(
            select(RiskDecision.id, RiskDecision.payment_id)
            .join(Payment, Payment.id == RiskDecision.payment_id)
            .where(
                RiskDecision.review_status == ReviewStatus.OPEN,
                Payment.status != PaymentStatus.PENDING,
            )
            .limit(ctx.batch_size)
        ).all()
    closed = 0
    for decision_id, payment_id in moot:
        with ctx.database.session_scope() as session:
            if risk.close_moot_review(session, decision_id, ctx.clock.now()) is None:
                continue
            session.execute(  # it waits for nobody now (the API shows held_for_review)
                update(Payment).where(Payment.id == payment_id).values(held_for_review=False)
            )
            closed += 1
    return closed


# Closing abandoned attempts at the gateway -------------------------------------------------


GATEWAY_EXPIRY_GRACE = timedelta(minutes=10)
"""How long after the order's expiry (the time_expire knowpay gave the gateway) an attempt the
gateway could not close is still watched: a payment made just before then may report late."""


def close_abandoned_attempts(ctx: JobContext) -> int:
    """Close at the gateway the attempts knowpay gave up on; a capture found there is recorded.

    An attempt the gateway cannot close yet (an Alipay QR code nobody scanned has no trade to
    close, but makes one when scanned; a WeChat order whose create call knowpay gave up on may
    still appear) is asked again, with backoff, until its expiry at the gateway has passed:
    a buyer who pays it meanwhile is found, and the money recorded (and owed back)."""
    now = ctx.clock.now()
    with ctx.database.session_scope(read_only=True) as session:
        candidates = session.execute(
            select(Payment.id, Payment.gateway_close_attempts, Order.expires_at)
            .join(Order, Order.id == Payment.order_id)
            .where(
                Payment.needs_gateway_close.is_(True),
                or_(Payment.next_gateway_close_at.is_(None), Payment.next_gateway_close_at <= now),
            )
            .limit(ctx.batch_size)
        ).all()
    done = 0
    for payment_id, attempts, expires_at in candidates:
        watch_until = expires_at + GATEWAY_EXPIRY_GRACE
        next_try = now + backoff(attempts + 1)
        if now < watch_until:  # the last try comes right after the gateway's expiry
            next_try = min(next_try, watch_until)
        with ctx.database.session_scope() as session:
            claimed = _claim(
                session,
                payment_id,
                "next_gateway_close_at",
                "gateway_close_attempts",
                now,
                next_try,
            )
            payment = session.get(Payment, payment_id) if claimed else None
        if payment is None:
            continue
        try:
            channel = ctx.payments.registry.get(payment.channel)
            result = channel.close_payment(payment.id, gateway_trade_no=payment.gateway_trade_no)
        except (KnowpayError, ChannelError) as exc:
            logger.warning("closing %s at its gateway failed; will retry: %s", payment_id, exc)
            continue
        with ctx.database.session_scope() as session:
            if result.status is ChannelStatus.SUCCEEDED and not _recorded(
                ctx, session, payment_id, result
            ):
                continue  # the capture does not fit the attempt: asked again at next_try
            if result.status is ChannelStatus.PENDING and now < watch_until:
                continue  # still payable at the gateway: asked again at next_try
            session.execute(
                update(Payment).where(Payment.id == payment_id).values(needs_gateway_close=False)
            )
        done += 1
    return done


def _recorded(
    ctx: JobContext, session: Session, payment_id: str, result: PaymentQueryResult
) -> bool:
    """Record a capture a gateway reported on closing; False when it does not fit the attempt
    (AmountMismatch, TradeMismatch): staff are told once, and one attempt stops no other's
    close."""
    now = ctx.clock.now()
    try:
        with session.begin_nested():
            service.apply_query_result(session, payment_id, result, now)
    except KnowpayError as exc:
        logger.warning("closing %s: a capture that does not fit it: %s", payment_id, exc)
        raise_alert_once(
            session,
            kind="gateway_capture_not_recorded",
            subject_id=payment_id,
            now=now,
            message=f"Closing payment {payment_id}, its gateway reported a capture that does "
            f"not fit it, so it was not recorded: {str(exc)[:300]}. Check it at the gateway.",
        )
        return False
    return True


# Reminders ---------------------------------------------------------------------------------


def remind_unpaid_orders(ctx: JobContext) -> int:
    """Emit `order.payment_reminder` once for each unpaid order about to expire."""
    now = ctx.clock.now()
    sent = 0
    with ctx.database.session_scope() as session:
        due = session.scalars(
            select(Order)
            .where(
                Order.status == OrderStatus.CREATED,
                Order.reminded_at.is_(None),
                Order.expires_at > now,
                Order.expires_at <= now + ctx.reminder_lead,
            )
            .limit(ctx.batch_size)
        ).all()
        for order in due:
            result = session.execute(
                update(Order)
                .where(Order.id == order.id, Order.reminded_at.is_(None))
                .values(reminded_at=now)
            )
            if int(getattr(result, "rowcount", 0) or 0) != 1:
                continue
            session.refresh(order)
            emit(
                session,
                event_type="order.payment_reminder",
                data=OrderOut.of(order).model_dump(mode="json"),
                stream_key=order.id,
                app_id=order.app_id,
                now=now,
            )
            sent += 1
    return sent
