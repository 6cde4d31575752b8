"""The active query: asking the gateway about an attempt, and acting on its answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from knowpay.channels.errors import ChannelError
from knowpay.channels.types import ChannelStatus, PaymentQueryResult
from knowpay.payments.models import Payment
from knowpay.payments.service._shared import (
    _money,
    _require,
)
from knowpay.payments.service.capture import record_capture
from knowpay.payments.service.closing import (
    gateway_error,
    record_closed_at_gateway,
    record_failure,
)
from knowpay.payments.service.context import PaymentsContext


def apply_query_result(
    session: Session, payment_id: str, result: PaymentQueryResult, now: datetime
) -> Payment:
    """Act on what an active query learned: a capture, a failure, or nothing yet."""
    if result.status is ChannelStatus.SUCCEEDED:
        payment = _require(session, payment_id)
        record_capture(
            session,
            payment_id,
            result.amount or _money(payment),
            result.gateway_trade_no,
            now,
            paid_at=result.paid_at,
        )
    elif result.status is ChannelStatus.FAILED:
        record_failure(
            session, payment_id, result.failure_code or "failed", result.failure_message, now
        )
    elif result.status is ChannelStatus.CLOSED:
        record_closed_at_gateway(session, payment_id, now)
    return _require(session, payment_id)


def query_gateway(ctx: PaymentsContext, payment: Payment) -> PaymentQueryResult:
    """Ask the gateway about an attempt (outside any transaction)."""
    try:
        return ctx.registry.get(payment.channel).query_payment(
            payment.id, gateway_trade_no=payment.gateway_trade_no
        )
    except ChannelError as exc:
        raise gateway_error(payment.channel, exc) from exc
