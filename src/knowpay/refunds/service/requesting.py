"""Requesting a refund: asked for on a paid order (approved at once when the policy allows),
or started by the system for a duplicate payment."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from knowpay.auth.principals import Principal
from knowpay.entitlements import service as entitlements
from knowpay.kit.config import RefundSettings
from knowpay.kit.ids import new_id
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.orders.states import OrderStatus
from knowpay.payments import service as payments
from knowpay.refunds.errors import (
    OrderNotPaid,
    RefundExceedsCaptured,
    RefundWindowClosed,
    TopUpNotRefundable,
)
from knowpay.refunds.models import Refund
from knowpay.refunds.schemas import RefundCreate
from knowpay.refunds.service._shared import (
    SYSTEM,
    RefundsContext,
    _audit,
    _emit,
    _refundable,
    _step,
    actor_of,
)
from knowpay.refunds.service.deciding import approve
from knowpay.refunds.states import RefundStatus

REFUNDABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})


def request_refund(
    session: Session, ctx: RefundsContext, caller: Principal, body: RefundCreate, now: datetime
) -> Refund:
    """Ask for money back on a paid order; approved at once when the policy allows."""
    order = orders.get_visible(session, caller, body.order_id, for_update=True)
    if order.status not in REFUNDABLE or order.paid_payment_id is None:
        raise OrderNotPaid(f"Order {order.id} is {order.status}; only paid orders can be refunded.")
    if orders.is_top_up(order):
        # The coins may be spent already; what is left is the buyer's to spend on content.
        raise TopUpNotRefundable(
            f"Order {order.id} topped up the buyer's wallet; top-ups are not refunded."
        )
    window = timedelta(days=ctx.policy.buyer_request_window_days)
    is_buyer = caller.role.value in ("buyer", "creator")
    if is_buyer and order.paid_at is not None and now - order.paid_at > window:
        raise RefundWindowClosed(
            f"Refunds can be asked for up to {window.days} days after payment."
        )
    refundable = _refundable(session, order)
    amount = body.amount if body.amount is not None else refundable
    if amount <= 0 or amount > refundable:
        raise RefundExceedsCaptured(
            f"At most {refundable} {order.currency} minor units can still be refunded.",
            refundable=refundable,
        )
    payment = payments.get_payment(session, order.paid_payment_id)
    refund = Refund(
        id=new_id("re"),
        order_id=order.id,
        payment_id=payment.id,
        app_id=order.app_id,
        user_id=order.user_id,
        channel=payment.channel,
        kind="request",
        amount_minor=amount,
        currency=order.currency,
        status=RefundStatus.PENDING_APPROVAL.value,
        reason=body.reason,
        reason_text=body.reason_text,
        requested_by=actor_of(caller),
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    _audit(session, "refund.created", refund, None, now)
    _step(session, refund, "requested", actor_of(caller), now, body.reason_text)
    session.flush()  # the row's defaults (its attempt counters) come with the insert
    if _auto_approves(session, ctx.policy, order, refund, now):
        approve(session, refund, SYSTEM, now, note="approved automatically by the refund policy")
    _emit(session, "refund.created", refund, now)  # as the caller's answer shows it
    return refund


def _auto_approves(
    session: Session, policy: RefundSettings, order: Order, refund: Refund, now: datetime
) -> bool:
    """Within the window after payment, and either small or never used."""
    if order.paid_at is None or now - order.paid_at > timedelta(
        days=policy.auto_approve_window_days
    ):
        return False
    small = refund.amount_minor <= policy.auto_approve_max_minor
    return small or not entitlements.any_used(session, refund.payment_id)


# A duplicate refund's stored reason text (also the gateway's refund note); pages show it
# in the reader's language.
DUPLICATE_OF_CLOSED = (
    "The order was closed before this payment arrived; it goes back automatically."
)
DUPLICATE_OF_PAID = "The order was already paid; this second payment goes back automatically."


def _duplicate_reason(order_status: str) -> str:
    """What the payer (and the gateway's refund note) is told: the order had been paid by
    another payment, or closed before this one arrived."""
    return DUPLICATE_OF_CLOSED if order_status == OrderStatus.CLOSED else DUPLICATE_OF_PAID


def start_duplicate_refund(session: Session, payment_id: str, now: datetime) -> Refund | None:
    """Refund a duplicate capture through its own channel, approved by the system."""
    payment = payments.get_payment(session, payment_id)
    # The order first, as every flow locks (order, then payment): claiming the payment and
    # then inserting a refund, whose key check takes a lock on the order, deadlocked with a
    # capture that holds the order and waits for the payment.
    order = orders.lock(session, payment.order_id)
    refund_id = new_id("re")
    if not payments.claim_duplicate_for_refund(session, payment.id, refund_id):
        return None
    refund = Refund(
        id=refund_id,
        order_id=payment.order_id,
        payment_id=payment.id,
        app_id=payment.app_id,
        user_id=payment.user_id,
        channel=payment.channel,
        kind="duplicate",
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        status=RefundStatus.PENDING_APPROVAL.value,
        reason="duplicate_purchase",
        reason_text=_duplicate_reason(order.status),
        requested_by=SYSTEM,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    _audit(session, "refund.created", refund, None, now)
    _step(session, refund, "requested", SYSTEM, now, "duplicate payment detected")
    session.flush()  # the row's defaults (its attempt counters) come with the insert
    approve(session, refund, SYSTEM, now, note="duplicate payments are refunded automatically")
    _emit(session, "refund.created", refund, now)
    return refund
