"""The steps every refund flow writes with: the state transition and its audit record, the
timeline entry, the ledger posting and the event; who acted; what is still refundable."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from knowpay.audit import service as audit
from knowpay.auth.principals import Principal
from knowpay.kit.config import RefundSettings, WalletSettings
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger.service import Leg, post_entry
from knowpay.orders.models import Order
from knowpay.payments import service as payments
from knowpay.refunds.models import Refund, RefundTimelineEntry
from knowpay.refunds.schemas import RefundOut
from knowpay.refunds.service.reading import open_amount, timeline
from knowpay.refunds.states import RefundStatus, next_status

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class RefundsContext:
    payments: payments.PaymentsContext
    policy: RefundSettings
    wallet: WalletSettings = field(default_factory=WalletSettings)


def actor_of(principal: Principal) -> str:
    """How the timeline names who acted."""
    return principal.actor


def _money(refund: Refund) -> Money:
    return Money(refund.amount_minor, refund.currency)


# What each transition of the state table is called in the audit log.
_AUDIT_ACTIONS: dict[tuple[RefundStatus, RefundStatus], str] = {
    (RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING): "refund.approved",
    (RefundStatus.PENDING_APPROVAL, RefundStatus.REJECTED): "refund.rejected",
    (RefundStatus.PROCESSING, RefundStatus.SUCCEEDED): "refund.succeeded",
    (RefundStatus.PROCESSING, RefundStatus.FAILED): "refund.failed",
    (RefundStatus.FAILED, RefundStatus.PROCESSING): "refund.retried",
    (RefundStatus.FAILED, RefundStatus.SUCCEEDED): "refund.resolved",
}


def _audit(
    session: Session, action: str, refund: Refund, before: str | None, now: datetime
) -> None:
    audit.record(
        session,
        action=action,
        object_type="refund",
        object_id=refund.id,
        before=None if before is None else {"status": before},
        after={
            "status": refund.status,
            "amount": refund.amount_minor,
            "currency": refund.currency,
            "kind": refund.kind,
            "order_id": refund.order_id,
        },
        now=now,
    )


def _transition(session: Session, refund: Refund, target: RefundStatus, now: datetime) -> None:
    """The one place a refund's status changes: allowed by the state table, then audited."""
    before = RefundStatus(refund.status)
    refund.status = next_status(refund.status, target).value
    action = _AUDIT_ACTIONS.get((before, target), f"refund.{target.value}")
    _audit(session, action, refund, before.value, now)


def _step(
    session: Session, refund: Refund, step: str, actor: str, now: datetime, note: str | None = None
) -> None:
    session.add(
        RefundTimelineEntry(
            id=new_id("rtl"),
            refund_id=refund.id,
            status=refund.status,
            step=step,
            actor=actor,
            note=note,
            at=now,
        )
    )


def _emit(session: Session, event_type: str, refund: Refund, now: datetime) -> None:
    session.flush()
    data = RefundOut.of(refund, timeline(session, refund.id)).model_dump(mode="json")
    emit(
        session,
        event_type=event_type,
        data=data,
        stream_key=refund.order_id,
        app_id=refund.app_id,
        now=now,
    )


def _refundable(session: Session, order: Order) -> int:
    """What is left to refund of an order (locked by the caller): captured, less what was
    refunded and what open refunds hold."""
    return order.amount_minor - order.refunded_minor - open_amount(session, order.id)


def _source_account(refund: Refund) -> str:
    """Where refunded money is taken from: revenue, or what a duplicate left owed."""
    return (
        ledger_accounts.DUPLICATE_PAYMENTS_PAYABLE
        if refund.kind == "duplicate"
        else ledger_accounts.PLATFORM_REVENUE
    )


def _post(
    session: Session, refund: Refund, kind: str, *, debit: str, credit: str, now: datetime
) -> None:
    """One refund stage in the ledger: the refund's amount from `credit` to `debit`."""
    post_entry(
        session,
        kind=kind,
        now=now,
        order_id=refund.order_id,
        payment_id=refund.payment_id,
        refund_id=refund.id,
        legs=[Leg(debit, _money(refund)), Leg(credit, -_money(refund))],
    )
