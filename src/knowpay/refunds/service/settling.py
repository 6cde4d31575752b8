"""Applying a gateway's result to a refund (its answer, a notification or a query), and
settling the order's side of a succeeded refund."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert_once
from knowpay.channels.types import ChannelStatus, RefundRequest, RefundResult
from knowpay.entitlements import service as entitlements
from knowpay.entitlements.schemas import EntitlementOut
from knowpay.kit.config import RefundSettings
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger import service as ledger
from knowpay.ledger.service import Leg, post_entry
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.orders.states import OrderStatus
from knowpay.orders.states import next_status as next_order_status
from knowpay.refunds.models import Refund
from knowpay.refunds.service._shared import (
    SYSTEM,
    RefundsContext,
    _emit,
    _money,
    _post,
    _source_account,
    _step,
    _transition,
)
from knowpay.refunds.service.reading import get, lock, timeline
from knowpay.refunds.states import RefundStatus
from knowpay.wallet import service as wallet
from knowpay.wallet.service import WALLET_CHANNEL, Movement, WalletChange


def record_answer(
    session: Session,
    ctx: RefundsContext,
    refund_id: str,
    request: RefundRequest,
    result: RefundResult,
    now: datetime,
) -> Refund:
    """Settle the refund from the gateway's answer to `request` (the system acts)."""
    return apply_result(
        session, refund_id, result, now, SYSTEM, ctx.policy, out_refund_no=request.out_refund_no
    )


def apply_result(
    session: Session,
    refund_id: str,
    result: RefundResult,
    now: datetime,
    actor: str,
    policy: RefundSettings,
    out_refund_no: str | None = None,
) -> Refund:
    """Settle a processing refund from what the gateway said (by answer, notification or query).
    An outcome for an earlier attempt's number is ignored; one naming another refund at the
    gateway than the one the refund carries changes nothing, and staff are told."""
    order_id = get(session, refund_id).order_id
    orders.lock(session, order_id)
    refund = lock(session, refund_id)
    if out_refund_no and out_refund_no != refund.out_refund_no:
        return refund
    if names_another_refund(refund, result.gateway_refund_no):
        _alert_another_refund(session, refund, result, now)
        return refund
    if refund.status == RefundStatus.SUCCEEDED and result.status is ChannelStatus.FAILED:
        if _gateway_took_back(refund, result):
            _alert_reversed(session, refund, result, now)
        return refund
    if refund.status != RefundStatus.PROCESSING:
        return refund
    if result.attention and result.status is ChannelStatus.PENDING:
        _alert_held(session, refund, result.attention, now)
    if result.gateway_refund_no:
        refund.gateway_refund_no = result.gateway_refund_no
    if refund.needs_gateway_call and result.status is not ChannelStatus.FAILED:
        # This is the gateway's answer to the send: it has the refund now.
        _step(session, refund, "sent_to_gateway", f"gateway:{refund.channel}", now)
    refund.needs_gateway_call = False
    refund.updated_at = now
    refund.next_check_at = now + timedelta(seconds=policy.check_after_s)
    if result.status is ChannelStatus.SUCCEEDED:
        _succeed(session, refund, actor, now, policy)
    elif result.status in (ChannelStatus.FAILED, ChannelStatus.CLOSED):
        _fail(
            session,
            refund,
            actor,
            result.failure_code or "refund_failed",
            result.failure_message,
            now,
        )
    return refund


def names_another_refund(refund: Refund, gateway_refund_no: str | None) -> bool:
    """Whether the gateway speaks of a refund other than the one this refund carries (it
    takes the gateway's id the first time one is named, and keeps it)."""
    return bool(gateway_refund_no) and refund.gateway_refund_no not in (None, gateway_refund_no)


def _alert_another_refund(
    session: Session, refund: Refund, result: RefundResult, now: datetime
) -> None:
    """A result for another refund at the gateway under this refund's number (a second refund
    made with it, at the gateway or by someone holding the keys) is not this refund's outcome;
    but that refund may have moved the buyer's money, so staff are told, once per other id."""
    other = result.gateway_refund_no or ""
    raise_alert_once(
        session,
        kind="gateway_refund_mismatch",
        subject_id=f"{refund.id}:{other}",
        now=now,
        message=f"The {refund.channel} gateway reported refund {other} ({result.status.value}) "
        f"for refund {refund.id} of order {refund.order_id}, which the gateway numbered "
        f"{refund.gateway_refund_no}; knowpay kept {refund.gateway_refund_no} and left the "
        f"refund {refund.status}. Check both at the gateway: the other refund may have moved "
        "money knowpay's books do not show.",
    )


def _gateway_took_back(refund: Refund, result: RefundResult) -> bool:
    """Whether a failure reported for a succeeded refund means the money the gateway paid
    went back: the gateway had paid it (not staff by hand after a refusal), and the failure
    names the same refund at the gateway when it names one."""
    if refund.resolution is not None or refund.gateway_refund_no is None:
        return False
    return result.gateway_refund_no in (None, refund.gateway_refund_no)


def _alert_reversed(session: Session, refund: Refund, result: RefundResult, now: datetime) -> None:
    """The gateway failed a refund after it had succeeded (Stripe: the payer's bank sent it
    back): the buyer has not got the money, and knowpay's books say they have."""
    raise_alert_once(
        session,
        kind="refund_reversed",
        subject_id=refund.id,
        now=now,
        message=f"The {refund.channel} gateway now says refund {refund.id} of order "
        f"{refund.order_id} failed ({result.failure_code or 'no reason given'}) after it had "
        "succeeded: the money came back to the merchant and the buyer was not refunded. "
        "Pay the buyer back another way, or contact them.",
    )


def _alert_held(session: Session, refund: Refund, attention: str, now: datetime) -> None:
    """A refund the gateway holds until someone acts: on the timeline once, and to staff."""
    raised = raise_alert_once(
        session, kind="refund_needs_action", subject_id=refund.id, now=now, message=attention
    )
    already_on_timeline = any(
        e.step == "gateway_needs_action" for e in timeline(session, refund.id)
    )
    if raised is not None and not already_on_timeline:
        _step(session, refund, "gateway_needs_action", f"gateway:{refund.channel}", now, attention)


def _succeed(
    session: Session, refund: Refund, actor: str, now: datetime, policy: RefundSettings
) -> None:
    _transition(session, refund, RefundStatus.SUCCEEDED, now)
    _post(
        session,
        refund,
        "refund_succeeded",
        debit=ledger_accounts.REFUNDS_IN_FLIGHT,
        credit=ledger_accounts.channel_clearing(refund.channel),
        now=now,
    )
    if refund.channel == WALLET_CHANNEL:
        _back_to_wallet(session, refund, now)
    _step(session, refund, "money_returned", actor, now)
    _settle(session, refund, now, policy)


def _back_to_wallet(session: Session, refund: Refund, now: datetime) -> None:
    """A wallet payment's refund: the coins go from the wallet's clearing account back to
    the buyer's balance."""
    _post(
        session,
        refund,
        "wallet_refunded",
        debit=ledger_accounts.channel_clearing(WALLET_CHANNEL),
        credit=ledger_accounts.buyer_wallet(refund.user_id),
        now=now,
    )
    credit_wallet(session, refund, WalletChange.REFUND, now)


def credit_wallet(session: Session, refund: Refund, kind: WalletChange, now: datetime) -> None:
    """The refund's amount added to the buyer's balance (its ledger entry posted beside)."""
    wallet.credit(
        session,
        Movement(
            user_id=refund.user_id,
            app_id=refund.app_id,
            amount=_money(refund),
            kind=kind,
            reference=refund.id,
            order_id=refund.order_id,
            payment_id=refund.payment_id,
            refund_id=refund.id,
        ),
        now,
    )


def _settle(session: Session, refund: Refund, now: datetime, policy: RefundSettings) -> None:
    """The order's side of a succeeded refund: the refunded total, its status, the content;
    then the events, `refund.succeeded` before any `entitlement.revoked`."""
    refund.succeeded_at = now
    refund.needs_gateway_call = False
    revoked = []
    if refund.kind == "request":
        order = orders.lock(session, refund.order_id)
        order.refunded_minor += refund.amount_minor
        full = order.refunded_minor == order.amount_minor
        target = OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED
        before = order.status
        order.status = next_order_status(order.status, target).value
        order.updated_at = now
        orders.record_status_change(session, order, before, now)
        if full or policy.revoke_on_partial:
            revoked = entitlements.revoke_granted_by(session, refund.payment_id, now)
        _take_back_creator_shares(session, order, refund, now)
    _emit(session, "refund.succeeded", refund, now)
    for entitlement in revoked:
        emit(
            session,
            event_type="entitlement.revoked",
            data=EntitlementOut.of(entitlement).model_dump(mode="json"),
            stream_key=refund.order_id,
            app_id=refund.app_id,
            now=now,
        )


def _take_back_creator_shares(
    session: Session, order: Order, refund: Refund, now: datetime
) -> None:
    """The creators give back their share in proportion to what is refunded in all (rounded
    down, so a full refund takes back exactly what was shared): what the order's refunds
    should have taken back by now, less what they did."""
    prefix = ledger_accounts.CREATOR_PAYABLE_PREFIX
    moved = ledger.order_kind_totals(session, order.id, prefix)
    legs: list[Leg] = []
    for (account, kind), total in sorted(moved.items()):
        if kind != "creator_share":
            continue
        shared = -total
        due = shared * order.refunded_minor // order.amount_minor
        back = due - moved.get((account, "creator_share_reversed"), 0)
        if back > 0:
            legs.append(Leg(account, Money(back, order.currency)))
    if legs:
        taken = sum(leg.amount.amount_minor for leg in legs)
        post_entry(
            session,
            kind="creator_share_reversed",
            now=now,
            order_id=order.id,
            payment_id=refund.payment_id,
            refund_id=refund.id,
            legs=[*legs, Leg(ledger_accounts.PLATFORM_REVENUE, -Money(taken, order.currency))],
        )


def _fail(
    session: Session, refund: Refund, actor: str, code: str, message: str | None, now: datetime
) -> None:
    _transition(session, refund, RefundStatus.FAILED, now)
    refund.failure_code = code[:64]
    refund.failure_message = (message or code)[:500]
    _post(
        session,
        refund,
        "refund_failed",
        debit=ledger_accounts.REFUNDS_IN_FLIGHT,
        credit=_source_account(refund),
        now=now,
    )
    _step(session, refund, "gateway_refused", actor, now, refund.failure_message)
    _emit(session, "refund.failed", refund, now)
