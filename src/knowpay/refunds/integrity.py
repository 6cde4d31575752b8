"""Every money invariant, refunds included: what `knowpay ledger check` runs."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger.models import JournalEntry, Posting
from knowpay.ledger.service import Violation
from knowpay.payments import integrity as payment_integrity
from knowpay.refunds.models import Refund
from knowpay.refunds.states import RefundStatus


def _processing(session: Session) -> list[Refund]:
    return list(
        session.scalars(select(Refund).where(Refund.status == RefundStatus.PROCESSING)).all()
    )


def check(session: Session) -> list[Violation]:
    """All violations; empty when the books are sound."""
    processing = _processing(session)
    sent_from_revenue: dict[str, int] = defaultdict(int)
    in_flight: dict[str, int] = defaultdict(int)
    for refund in processing:
        in_flight[refund.order_id] += refund.amount_minor
        if refund.kind == "request":
            sent_from_revenue[refund.order_id] += refund.amount_minor
    violations = payment_integrity.check(session, sent_from_revenue)
    ledger_in_flight: dict[str, int] = {
        str(order_id): int(total or 0)
        for order_id, total in session.execute(
            select(Posting.order_id, func.sum(Posting.amount_minor))
            .where(Posting.account == ledger_accounts.REFUNDS_IN_FLIGHT)
            .group_by(Posting.order_id)
        ).all()
    }
    for order_id in set(ledger_in_flight) | set(in_flight):
        held = -ledger_in_flight.get(order_id, 0)
        if held != in_flight.get(order_id, 0):
            violations.append(
                Violation(
                    "refunds_in_flight",
                    str(order_id),
                    f"processing refunds hold {in_flight.get(order_id, 0)}, the ledger {held}",
                )
            )
    violations += _refund_violations(session)
    return violations


def _refund_violations(session: Session) -> list[Violation]:
    """A succeeded refund has exactly one settling entry; refunded never exceeds captured."""
    settled = dict(
        session.execute(
            select(JournalEntry.refund_id, func.count())
            .where(JournalEntry.kind.in_(("refund_succeeded", "refund_resolved")))
            .group_by(JournalEntry.refund_id)
        ).all()
    )
    violations = []
    for refund_id in session.scalars(
        select(Refund.id).where(Refund.status == RefundStatus.SUCCEEDED)
    ).all():
        if settled.get(refund_id, 0) != 1:
            violations.append(
                Violation(
                    "refund_settled_once",
                    refund_id,
                    f"{settled.get(refund_id, 0)} settling entries",
                )
            )
    return violations
