"""Attempts and orders that end unpaid: a gateway that cannot be reached, a failure the
gateway reports, a trade the gateway closed, and closing an unpaid order at its gateways;
a channel failure as the problem the caller sees."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from knowpay.channels.errors import ChannelError, ChannelUnavailable
from knowpay.channels.types import ChannelStatus
from knowpay.kit.errors import KnowpayError
from knowpay.limits import service as limits
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderAlreadyPaid
from knowpay.orders.models import Order
from knowpay.orders.states import OrderStatus
from knowpay.payments import repository
from knowpay.payments.errors import ChannelUnavailableError, GatewayError
from knowpay.payments.models import Payment
from knowpay.payments.service._shared import (
    _close,
    _close_at_gateway_later,
    _emit_order,
    _fail,
    _lock_order_then_payment,
    _money,
    _require_gateway,
)
from knowpay.payments.service.capture import record_capture
from knowpay.payments.service.context import PaymentsContext
from knowpay.payments.states import PaymentStatus

logger = logging.getLogger("knowpay.payments")


def fail_unreachable(session: Session, payment_id: str, reason: str, now: datetime) -> Payment:
    """The gateway could not be reached to open the trade: the attempt fails, the order
    stays payable."""
    payment = _lock_order_then_payment(session, payment_id)[1]
    # Logged as well as stored on the attempt: whoever looks into a 503 starts from the log.
    logger.warning(
        "payment %s on %s failed at the gateway: %s", payment.id, payment.channel, reason
    )
    _fail(session, payment, "channel_unavailable", reason, now)
    # The gateway may have opened the trade before the connection broke: close it there too.
    _close_at_gateway_later(payment, now)
    return payment


def record_failure(
    session: Session,
    payment_id: str,
    code: str,
    message: str | None,
    now: datetime,
    *,
    gateway: str | None = None,
) -> Payment:
    """The gateway says the attempt failed; only a pending attempt changes. `gateway`: the
    gateway whose notification says so, which must be the one that runs the attempt."""
    payment = _lock_order_then_payment(session, payment_id)[1]
    _require_gateway(payment, gateway)
    _fail(session, payment, code, message, now)
    return payment


def record_closed_at_gateway(
    session: Session, payment_id: str, now: datetime, *, gateway: str | None = None
) -> Payment:
    """The gateway closed the trade unpaid (its own time limit, a close from elsewhere, a
    canceled PaymentIntent), as its query or its notification says: the attempt can never be
    paid, so it is closed here too; the order stays payable. Only a pending attempt changes
    (Alipay also says TRADE_CLOSED of a paid trade it has refunded in full). `gateway`: as
    for `record_failure`."""
    payment = _lock_order_then_payment(session, payment_id)[1]
    _require_gateway(payment, gateway)
    if payment.status == PaymentStatus.PENDING:
        _close(session, payment, now, at_gateway_later=False)
    return payment


def gateway_error(channel: str, exc: ChannelError) -> KnowpayError:
    """A channel failure as the problem the caller sees: 503 when it may pass, else 502."""
    if isinstance(exc, ChannelUnavailable):
        return ChannelUnavailableError(
            f"The {channel} gateway cannot be reached: {exc}",
            retry_after_s=getattr(exc, "retry_after_s", None),  # a breaker's time left
        )
    return GatewayError(f"The {channel} gateway refused the call: {exc}")


def close_order(session: Session, ctx: PaymentsContext, order: Order, now: datetime) -> Order:
    """Close an unpaid order and its pending attempts at their gateways.

    No lock is held while the gateways answer: a lock held through a gateway call would
    stall every request that needs it (on SQLite, every write) for as long as the gateway
    takes. Instead the order is marked closing (no payment may start meanwhile) and the
    session's transaction is committed; the order is locked again once the gateways have
    answered. If a gateway says an attempt was paid meanwhile, that capture is recorded and
    the order is returned paid instead of closed."""
    order = orders.lock(session, order.id)
    if order.status == OrderStatus.CLOSED:
        return order
    if order.status != OrderStatus.CREATED:
        raise OrderAlreadyPaid(f"Order {order.id} is {order.status} and cannot be closed.")
    order_id = order.id
    order.closing_since = now
    attempts = [
        (payment.id, payment.channel, payment.gateway_trade_no, _money(payment))
        for payment in repository.pending_for_order(session, order_id)
    ]
    session.commit()
    closed_at_gateway: set[str] = set()
    for payment_id, channel, gateway_trade_no, amount in attempts:
        try:
            result = ctx.registry.get(channel).close_payment(
                payment_id, gateway_trade_no=gateway_trade_no
            )
        except ChannelError as exc:
            _payable_again(session, order_id)
            raise gateway_error(channel, exc) from exc
        except KnowpayError:  # the channel is no longer configured here
            _payable_again(session, order_id)
            raise
        if result.status is ChannelStatus.SUCCEEDED:
            paid = result.amount or amount
            try:
                record_capture(
                    session, payment_id, paid, result.gateway_trade_no, now, paid_at=result.paid_at
                )
            except KnowpayError:  # another amount or trade than the attempt's: not its money
                _payable_again(session, order_id)
                raise
            order = orders.lock(session, order_id)
            order.closing_since = None
            return order
        if result.status is ChannelStatus.CLOSED:
            closed_at_gateway.add(payment_id)
    return _close_locally(session, order_id, closed_at_gateway, now)


def _payable_again(session: Session, order_id: str) -> None:
    """The close could not ask every gateway: it is given up, and its mark taken off."""
    session.rollback()
    orders.lock(session, order_id).closing_since = None
    session.commit()


def _close_locally(
    session: Session, order_id: str, closed_at_gateway: set[str], now: datetime
) -> Order:
    """The order and its pending attempts, closed under the order's lock. An attempt the
    gateway did not say is closed (it could not close it now, or was not asked) is closed
    there by the close_abandoned job."""
    order = orders.lock(session, order_id)
    order.closing_since = None
    if order.status != OrderStatus.CREATED:  # paid while the gateways answered
        return order
    for payment in repository.pending_for_order(session, order_id, for_update=True):
        _close(session, payment, now, at_gateway_later=payment.id not in closed_at_gateway)
    orders.mark_closed(order, now)
    limits.release_order(session, order.id, now)
    orders.record_status_change(session, order, OrderStatus.CREATED.value, now)
    session.flush()
    _emit_order(session, "order.closed", order, now)
    return order
