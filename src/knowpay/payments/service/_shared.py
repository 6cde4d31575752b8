"""Private helpers the payment flows share: events, audit, the attempt's amount, the row
locks taken in one order (order, then payment), and failing an attempt or leaving its
gateway-side close to the close_abandoned job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from knowpay.audit import service as audit
from knowpay.channels.types import CHANNEL_GATEWAYS
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderNotFound
from knowpay.orders.models import Order
from knowpay.orders.schemas import OrderOut
from knowpay.payments import repository
from knowpay.payments.errors import PaymentNotFound
from knowpay.payments.models import Payment
from knowpay.payments.schemas import PaymentOut
from knowpay.payments.states import PaymentStatus, next_status
from knowpay.risk import service as risk


def _emit_payment(session: Session, event_type: str, payment: Payment, now: datetime) -> None:
    emit(
        session,
        event_type=event_type,
        data=PaymentOut.of(payment).model_dump(mode="json"),
        stream_key=payment.order_id,
        app_id=payment.app_id,
        now=now,
    )


def _emit_order(session: Session, event_type: str, order: Order, now: datetime) -> None:
    emit(
        session,
        event_type=event_type,
        data=OrderOut.of(order).model_dump(mode="json"),
        stream_key=order.id,
        app_id=order.app_id,
        now=now,
    )


def _money(payment: Payment) -> Money:
    return Money(payment.amount_minor, payment.currency)


def _audit_payment(
    session: Session, action: str, payment: Payment, before: str, now: datetime
) -> None:
    """A payment's status change in the audit log (in the transaction that made it)."""
    audit.record(
        session,
        action=action,
        object_type="payment",
        object_id=payment.id,
        before={"status": before},
        after={
            "status": payment.status,
            "amount": payment.amount_minor,
            "currency": payment.currency,
            "channel": payment.channel,
            "order_id": payment.order_id,
        },
        now=now,
    )


def _close_at_gateway_later(payment: Payment, now: datetime) -> None:
    """Leave the gateway-side close of an abandoned attempt to the close_abandoned job."""
    payment.needs_gateway_close = True
    payment.next_gateway_close_at = now


def _close(session: Session, payment: Payment, now: datetime, *, at_gateway_later: bool) -> None:
    """A pending attempt closed here, audited. `at_gateway_later`: the close_abandoned job is
    to close it at its gateway too (set before the audit record, whose insert flushes the
    attempt: one UPDATE carries both)."""
    payment.status = next_status(payment.status, PaymentStatus.CLOSED).value
    payment.updated_at = now
    if at_gateway_later:
        _close_at_gateway_later(payment, now)
    _audit_payment(session, "payment.closed", payment, PaymentStatus.PENDING.value, now)


def _fail(
    session: Session, payment: Payment, code: str, message: str | None, now: datetime
) -> None:
    if payment.status != PaymentStatus.PENDING:
        return
    payment.status = next_status(payment.status, PaymentStatus.FAILED).value
    payment.failure_code = code[:64]
    payment.failure_message = (message or code)[:500]
    payment.updated_at = now
    session.flush()
    _emit_payment(session, "payment.failed", payment, now)
    _audit_payment(session, "payment.failed", payment, PaymentStatus.PENDING.value, now)
    risk.record_outcome(session, payment.id, succeeded=False, now=now)


def _require_gateway(payment: Payment, gateway: str | None) -> None:
    """A gateway's notification speaks only of its own trades: another gateway's attempt is
    no trade of its own (its notification must not pay it, nor book money to the wrong
    channel)."""
    if gateway is not None and CHANNEL_GATEWAYS.get(payment.channel) != gateway:
        raise PaymentNotFound(f"No {gateway} payment {payment.id}")


def _require(session: Session, payment_id: str) -> Payment:
    # The session's copy is enough to learn the order and the amount (neither ever changes);
    # whatever may change is re-read under the lock.
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise PaymentNotFound(f"No such payment: {payment_id}")
    return payment


def _lock_order_then_payment(session: Session, payment_id: str) -> tuple[Order, Payment]:
    """Lock in one order everywhere (order, then payment) so that flows never deadlock."""
    try:
        order = orders.lock(session, repository.order_id_of(payment_id))
    except OrderNotFound:  # every payment has its order: it is the payment that is missing
        raise PaymentNotFound(f"No such payment: {payment_id}") from None
    return order, _lock_payment(session, payment_id)


def _lock_payment(session: Session, payment_id: str) -> Payment:
    """The attempt's row, locked and read again under the lock."""
    payment = repository.get(session, payment_id, for_update=True)
    if payment is None:  # pragma: no cover - payments are never deleted
        raise PaymentNotFound(f"No such payment: {payment_id}")
    return payment
