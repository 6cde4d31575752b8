"""Recording money the gateway captured, exactly once: paying the order (ledger entry,
entitlements, events, the order's other attempts closed) or recording a duplicate."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert, raise_alert_once
from knowpay.entitlements import service as entitlements
from knowpay.entitlements.schemas import EntitlementOut
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger.service import Leg, post_entry
from knowpay.limits import service as limits
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.orders.states import OrderStatus
from knowpay.payments import repository
from knowpay.payments.errors import AmountMismatch, TradeMismatch
from knowpay.payments.models import Payment
from knowpay.payments.service._shared import (
    _audit_payment,
    _close,
    _emit_order,
    _emit_payment,
    _lock_order_then_payment,
    _money,
    _require_gateway,
)
from knowpay.payments.states import PaymentStatus, next_status
from knowpay.risk import service as risk
from knowpay.wallet import service as wallet
from knowpay.wallet.service import Movement, WalletChange


class CaptureOutcome(StrEnum):
    RECORDED = "recorded"
    """The capture paid the order."""
    DUPLICATE = "duplicate"
    """Money captured for an order that was already paid or closed: owed back to the buyer."""
    ALREADY_RECORDED = "already_recorded"
    """This capture was recorded before (a repeated notification or query)."""


def record_capture(
    session: Session,
    payment_id: str,
    amount: Money,
    gateway_trade_no: str | None,
    now: datetime,
    *,
    gateway: str | None = None,
    paid_at: datetime | None = None,
) -> CaptureOutcome:
    """Record money the gateway captured for an attempt, exactly once.

    The first capture of an open order pays it: ledger entry, entitlements, events, and the
    order's other attempts closed. A capture for an order already paid or closed is recorded
    as a duplicate, owed back to the buyer. A repeat of a recorded capture changes nothing.
    AmountMismatch when the gateway's amount or currency is not the attempt's, recorded or
    not; a trade other than the attempt's does not pay it (`_capture_of_another_trade`).
    `gateway`: the gateway whose notification reports it, which must run the attempt
    (PaymentNotFound otherwise). `paid_at`: when the gateway says the payer paid, if it does."""
    order, payment = _lock_order_then_payment(session, payment_id)
    _require_gateway(payment, gateway)
    if amount != _money(payment):
        raise AmountMismatch(
            f"Payment {payment.id} is {_money(payment)}, the gateway reported {amount}."
        )
    if _names_another_trade(payment, gateway_trade_no):
        return _capture_of_another_trade(session, payment, gateway_trade_no or "", now)
    if payment.status == PaymentStatus.SUCCEEDED:
        return CaptureOutcome.ALREADY_RECORDED
    before = payment.status
    payment.status = next_status(payment.status, PaymentStatus.SUCCEEDED).value
    payment.succeeded_at = now
    payment.gateway_paid_at = paid_at
    payment.updated_at = now
    payment.failure_code = payment.failure_message = None
    _adopt_gateway_trade_no(session, payment, gateway_trade_no, now)
    payment.held_for_review = False
    risk.record_outcome(session, payment.id, succeeded=True, now=now)
    if order.status == OrderStatus.CREATED:
        _audit_payment(session, "payment.succeeded", payment, before, now)
        _pay_order(session, order, payment, now)
        return CaptureOutcome.RECORDED
    _audit_payment(session, "payment.duplicate_detected", payment, before, now)
    _record_duplicate(session, payment, now)
    return CaptureOutcome.DUPLICATE


def _names_another_trade(payment: Payment, gateway_trade_no: str | None) -> bool:
    """Whether the gateway speaks of a trade other than the one the attempt carries."""
    return bool(gateway_trade_no) and payment.gateway_trade_no not in (None, gateway_trade_no)


def _capture_of_another_trade(
    session: Session, payment: Payment, gateway_trade_no: str, now: datetime
) -> CaptureOutcome:
    """A capture the gateway reports for a trade other than the one the attempt carries (a
    second Stripe PaymentIntent or PayPal order with our number in its metadata) does not
    pay the attempt. An unpaid attempt refuses it (TradeMismatch: the notification is
    rejected, and a notification's rejection alerted); a paid one stays paid, the gateway is
    thanked, and staff are told once per other trade, since each may hold the buyer's money
    (it is not refunded here: a refund names the attempt's own trade)."""
    if payment.status != PaymentStatus.SUCCEEDED:
        raise TradeMismatch(
            f"Payment {payment.id} is trade {payment.gateway_trade_no}, "
            f"the gateway reported trade {gateway_trade_no}."
        )
    raise_alert_once(
        session,
        kind="gateway_trade_mismatch",
        subject_id=f"{payment.id}:{gateway_trade_no}",
        now=now,
        message=f"The {payment.channel} gateway reported money captured for payment "
        f"{payment.id} on trade {gateway_trade_no}, but the payment was paid as trade "
        f"{payment.gateway_trade_no}. Check both at the gateway and refund the other trade "
        "there if it holds the buyer's money.",
    )
    return CaptureOutcome.ALREADY_RECORDED


def _adopt_gateway_trade_no(
    session: Session, payment: Payment, gateway_trade_no: str | None, now: datetime
) -> None:
    """Keep the gateway's number for the attempt's trade, the first time the gateway names it.

    A gateway numbers each trade once, so a number another attempt already carries is the
    gateway's mistake (or a simulator's): the attempt goes without it, staff are told, and
    what the gateway reported about the money is still recorded."""
    if not gateway_trade_no or payment.gateway_trade_no is not None:
        return
    holder = repository.holder_of_gateway_trade_no(session, payment.channel, gateway_trade_no)
    if holder is not None and holder != payment.id:
        raise_alert(
            session,
            kind="gateway_trade_no_reused",
            subject_id=payment.id,
            now=now,
            message=f"The {payment.channel} gateway named trade {gateway_trade_no} for payment "
            f"{payment.id}, but payment {holder} already carries that number; the payment "
            "was recorded without it. Check both at the gateway.",
        )
        return
    payment.gateway_trade_no = gateway_trade_no


def _post_capture(
    session: Session, payment: Payment, kind: str, credit: str, now: datetime
) -> None:
    """The capture in the ledger: the gateway holds the amount for us, owed to `credit`."""
    amount = _money(payment)
    post_entry(
        session,
        kind=kind,
        now=now,
        order_id=payment.order_id,
        payment_id=payment.id,
        legs=[Leg(ledger_accounts.channel_clearing(payment.channel), amount), Leg(credit, -amount)],
    )
    session.flush()
    _emit_payment(session, "payment.succeeded", payment, now)


def _pay_order(session: Session, order: Order, payment: Payment, now: datetime) -> None:
    orders.mark_paid(order, payment.id, now)
    limits.settle_order(session, order.id, payment.channel, now)
    orders.record_status_change(session, order, OrderStatus.CREATED.value, now)
    if orders.is_top_up(order):
        _fill_wallet(session, payment, now)
    else:
        _post_capture(session, payment, "payment_captured", ledger_accounts.PLATFORM_REVENUE, now)
        _owe_creators_their_share(session, order, payment, now)
    _emit_order(session, "order.paid", order, now)
    # By product: the order every flow locks a buyer's entitlements in (a refund's too).
    for item in sorted(order.items, key=lambda line: line.product_id):
        entitlement = entitlements.grant(
            session,
            entitlements.GrantRequest(
                user_id=order.user_id,
                app_id=order.app_id,
                product_id=item.product_id,
                period_days=item.period_days,
                quantity=item.quantity,
                order_id=order.id,
                payment_id=payment.id,
            ),
            now,
        )
        emit(
            session,
            event_type="entitlement.granted",
            data=EntitlementOut.of(entitlement).model_dump(mode="json"),
            stream_key=order.id,
            app_id=order.app_id,
            now=now,
        )
    for other in repository.pending_for_order(session, order.id, for_update=True):
        # Closed at the gateway by the close_abandoned job; if one is paid there anyway,
        # it arrives as a duplicate and is owed back.
        _close(session, other, now, at_gateway_later=True)


def creator_shares(order: Order) -> dict[str, int]:
    """Each creator's share of the order, by the terms its lines keep: creator id → minor
    units (rounded down; the platform keeps the rounding)."""
    shares: dict[str, int] = {}
    for item in order.items:
        if item.creator_id and item.creator_share_bps:
            share = item.amount_minor * item.creator_share_bps // 10_000
            shares[item.creator_id] = shares.get(item.creator_id, 0) + share
    return {creator: share for creator, share in shares.items() if share > 0}


def _owe_creators_their_share(
    session: Session, order: Order, payment: Payment, now: datetime
) -> None:
    """Revenue owed on to the creators of the order's products (settlements pay it out)."""
    shares = creator_shares(order)
    if not shares:
        return
    total = Money(sum(shares.values()), order.currency)
    post_entry(
        session,
        kind="creator_share",
        now=now,
        order_id=order.id,
        payment_id=payment.id,
        legs=[
            Leg(ledger_accounts.PLATFORM_REVENUE, total),
            *(
                Leg(ledger_accounts.creator_payable(creator), -Money(share, order.currency))
                for creator, share in sorted(shares.items())
            ),
        ],
    )


def _fill_wallet(session: Session, payment: Payment, now: datetime) -> None:
    """A top-up's capture is owed to the buyer, not earned: it credits their wallet."""
    _post_capture(
        session, payment, "payment_captured", ledger_accounts.buyer_wallet(payment.user_id), now
    )
    wallet.credit(
        session,
        Movement(
            user_id=payment.user_id,
            app_id=payment.app_id,
            amount=_money(payment),
            kind=WalletChange.TOP_UP,
            reference=payment.id,
            order_id=payment.order_id,
            payment_id=payment.id,
        ),
        now,
    )


def _record_duplicate(session: Session, payment: Payment, now: datetime) -> None:
    payment.is_duplicate = True
    _post_capture(
        session, payment, "duplicate_captured", ledger_accounts.DUPLICATE_PAYMENTS_PAYABLE, now
    )
    _emit_payment(session, "payment.duplicate_detected", payment, now)
