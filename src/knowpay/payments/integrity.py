"""Every money invariant, checked over the whole database (`knowpay ledger check`)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from knowpay.entitlements import service as entitlements
from knowpay.ledger import service as ledger
from knowpay.ledger.models import JournalEntry
from knowpay.ledger.service import Violation
from knowpay.orders import service as orders
from knowpay.orders.states import OrderStatus
from knowpay.payments import repository
from knowpay.wallet import service as wallet

_CAPTURED = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})
_CAPTURE_KINDS = ("payment_captured", "duplicate_captured")


def _order_violations(session: Session, sent_refunds: Mapping[str, int]) -> list[Violation]:
    violations: list[Violation] = []
    holdings = ledger.order_holdings(session)
    in_wallets = ledger.top_up_holdings(session)
    for order in orders.all_orders(session):
        captured = order.amount_minor if order.status in _CAPTURED else 0
        expected = captured - order.refunded_minor - sent_refunds.get(order.id, 0)
        # A top-up's capture is owed to the buyer's wallet; a purchase's is revenue.
        held_in = in_wallets if orders.is_top_up(order) else holdings
        actual = held_in.pop((order.id, order.currency), 0)
        if actual != expected:
            violations.append(
                Violation(
                    "order_matches_ledger",
                    order.id,
                    f"captured - refunded is {expected} {order.currency}, "
                    f"the ledger holds {actual}",
                )
            )
        if (order.status in _CAPTURED) != (order.paid_payment_id is not None):
            violations.append(
                Violation(
                    "paid_once", order.id, f"{order.status} with payment {order.paid_payment_id}"
                )
            )
    violations += [
        Violation(
            "order_matches_ledger",
            order_id,
            f"ledger holds {amount} {currency} in a foreign currency",
        )
        for (order_id, currency), amount in holdings.items()
        if amount
    ]
    violations += [
        Violation(
            "order_matches_ledger",
            order_id,
            f"a capture put {amount} {currency} in a wallet, and the order is no top-up of it",
        )
        for (order_id, currency), amount in in_wallets.items()
        if amount
    ]
    return violations


def _payment_violations(session: Session) -> list[Violation]:
    counts = dict(
        session.execute(
            select(JournalEntry.payment_id, func.count())
            .where(JournalEntry.kind.in_(_CAPTURE_KINDS))
            .group_by(JournalEntry.payment_id)
        ).all()
    )
    violations: list[Violation] = []
    succeeded = {p.id for p in repository.succeeded(session)}
    for payment_id in succeeded:
        if counts.get(payment_id, 0) != 1:
            violations.append(
                Violation(
                    "payment_recorded_once",
                    payment_id,
                    f"{counts.get(payment_id, 0)} capture entries",
                )
            )
    violations += _orphan_captures(session, set(counts) - succeeded)
    for entitlement_id in entitlements.entitlements_without_grant(session):
        violations.append(
            Violation("entitlement_has_payment", entitlement_id, "no payment granted it")
        )
    for entitlement_id, payment_id in entitlements.grants(session):
        if payment_id not in succeeded:
            violations.append(
                Violation(
                    "entitlement_has_payment",
                    entitlement_id,
                    f"granted by {payment_id}, which did not succeed",
                )
            )
    return violations


def _orphan_captures(session: Session, payment_ids: set[str | None]) -> list[Violation]:
    """Capture entries of payments that did not succeed (or of none), named by entry."""
    if not payment_ids:
        return []
    named = [payment_id for payment_id in payment_ids if payment_id is not None]
    of_these: ColumnElement[bool] = JournalEntry.payment_id.in_(named)
    if None in payment_ids:
        of_these = or_(of_these, JournalEntry.payment_id.is_(None))
    rows = session.execute(
        select(JournalEntry.id, JournalEntry.payment_id)
        .where(JournalEntry.kind.in_(_CAPTURE_KINDS), of_these)
        .order_by(JournalEntry.id)
    ).all()
    return [
        Violation(
            "capture_has_payment",
            entry_id,
            f"capture entry for {f'payment {payment_id}' if payment_id else 'no payment'}, "
            "which did not succeed",
        )
        for entry_id, payment_id in rows
    ]


def check(session: Session, sent_refunds: Mapping[str, int] | None = None) -> list[Violation]:
    """All violations of the payment-side ledger invariants; empty when the books are sound.

    `sent_refunds` is, per order, what refunds already taken out of revenue but not yet
    confirmed hold (the refunds domain supplies it)."""
    return (
        ledger.check_entries(session)
        + _order_violations(session, sent_refunds or {})
        + _payment_violations(session)
        + wallet.check(session)
    )
