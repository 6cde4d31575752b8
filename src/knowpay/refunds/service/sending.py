"""Sending a refund to the gateway (outside any transaction): what is sent for its current
attempt, and the call."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert_once
from knowpay.channels.errors import ChannelDeclined, ChannelError
from knowpay.channels.types import ChannelStatus, RefundRequest, RefundResult
from knowpay.kit.errors import KnowpayError
from knowpay.kit.money import Money
from knowpay.payments import service as payments
from knowpay.refunds.models import Refund
from knowpay.refunds.service._shared import RefundsContext, _money
from knowpay.wallet.service import WALLET_CHANNEL

# The name the refunds service logged under before it became a package.
logger = logging.getLogger("knowpay.refunds.service")


def refund_request(ctx: RefundsContext, session: Session, refund: Refund) -> RefundRequest:
    """What to send the gateway for this refund's current attempt."""
    payment = payments.get_payment(session, refund.payment_id)
    return RefundRequest(
        out_trade_no=payment.id,
        out_refund_no=refund.out_refund_no or refund.id,
        amount=_money(refund),
        total=Money(payment.amount_minor, payment.currency),
        reason=refund.reason,
        notify_url=_notify_url(ctx, refund.channel),
        gateway_trade_no=payment.gateway_trade_no,
        note=refund.reason_text,
    )


def _notify_url(ctx: RefundsContext, channel_name: str) -> str:
    if channel_name == WALLET_CHANNEL:  # no gateway: nothing will notify
        return ""
    return ctx.payments.notify_url(ctx.payments.registry.get(channel_name))


def call_gateway(ctx: RefundsContext, request: RefundRequest, channel_name: str) -> RefundResult:
    """Send the refund (outside any transaction); a decline comes back as a failed result.
    The wallet is no gateway and always takes its coins back: applying the success credits
    the buyer's wallet (`settling._succeed`), once, under the refund's lock."""
    if channel_name == WALLET_CHANNEL:
        return RefundResult(ChannelStatus.SUCCEEDED)
    try:
        return ctx.payments.registry.get(channel_name).refund(request)
    except ChannelDeclined as declined:
        return RefundResult(
            ChannelStatus.FAILED, failure_code=declined.code, failure_message=declined.message
        )


def send(ctx: RefundsContext, request: RefundRequest, channel_name: str) -> RefundResult | None:
    """The gateway's answer to an approved refund (outside any transaction), or None when the
    gateway could not be reached: the send job tries again with the same refund number."""
    try:
        return call_gateway(ctx, request, channel_name)
    except (KnowpayError, ChannelError) as exc:
        logger.warning("refund %s not sent yet; will retry: %s", request.out_refund_no, exc)
        return None


def alert_unbelievable_answer(
    session: Session, refund: Refund, exc: Exception, now: datetime
) -> None:
    """A gateway answer that breaks its own protocol (another trade, another refund request,
    another amount) settles nothing, and asking again may never mend it: the job keeps asking
    with the same refund number, and staff are told once to look at the gateway."""
    raise_alert_once(
        session,
        kind="gateway_refund_unbelievable",
        subject_id=refund.id,
        now=now,
        message=f"The {refund.channel} gateway answered about refund {refund.id} of order "
        f"{refund.order_id} with what its protocol does not allow ({exc}). knowpay left the "
        "refund processing and keeps asking; check the refund at the gateway.",
    )
