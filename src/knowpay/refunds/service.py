"""Refunds: requesting, approving, executing through the original channel, settling.

Every step writes the refund's status, its timeline entry, its ledger entry and its events
in one transaction. What is still refundable is computed under the order's row lock, so
concurrent requests in many processes cannot together exceed what was captured. Never
commits; gateway calls happen with no transaction open (see tasks.py and endpoints.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert_once
from knowpay.audit import service as audit
from knowpay.auth.principals import Principal
from knowpay.auth.scoping import can_see
from knowpay.channels.errors import ChannelDeclined, ChannelError
from knowpay.channels.types import ChannelStatus, RefundRequest, RefundResult
from knowpay.entitlements import service as entitlements
from knowpay.entitlements.schemas import EntitlementOut
from knowpay.kit.config import RefundSettings
from knowpay.kit.errors import KnowpayError
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.kit.pagination import PageParams, page_of
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger.service import Leg, post_entry
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.orders.states import OrderStatus
from knowpay.orders.states import next_status as next_order_status
from knowpay.payments import service as payments
from knowpay.refunds.errors import (
    OrderNotPaid,
    RefundExceedsCaptured,
    RefundNotFound,
    RefundWindowClosed,
)
from knowpay.refunds.models import Refund, RefundTimelineEntry
from knowpay.refunds.schemas import RefundCreate, RefundOut
from knowpay.refunds.states import OPEN, RefundNotPending, RefundStatus, next_status

logger = logging.getLogger(__name__)

SYSTEM = "system"
REFUNDABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})


@dataclass(frozen=True, slots=True)
class RefundsContext:
    payments: payments.PaymentsContext
    policy: RefundSettings


def actor_of(principal: Principal) -> str:
    """How the timeline names who acted."""
    return f"{principal.role.value}:{principal.id}"


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


def timeline(session: Session, refund_id: str) -> list[RefundTimelineEntry]:
    statement = select(RefundTimelineEntry).where(RefundTimelineEntry.refund_id == refund_id)
    return list(session.scalars(statement.order_by(RefundTimelineEntry.id)).all())


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


def open_amount(session: Session, order_id: str) -> int:
    """What open refunds of an order's own payment hold (pending approval or processing)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.order_id == order_id,
            Refund.kind == "request",
            Refund.status.in_([s.value for s in OPEN]),
        )
    )
    return int(total or 0)


def _refundable(session: Session, order: Order) -> int:
    """What is left to refund of an order (locked by the caller): captured, less what was
    refunded and what open refunds hold."""
    return order.amount_minor - order.refunded_minor - open_amount(session, order.id)


def _take_back_its_amount(session: Session, refund: Refund) -> None:
    """A failed refund let its amount go back to what is refundable, and later refunds may
    have taken it since: sending it again, or paying it by hand, takes it once more, so it
    must still be there. The order is locked (`lock_with_order`). A duplicate payment's
    refund returns a payment the order never counted, and has nothing to share."""
    if refund.kind != "request" or refund.status != RefundStatus.FAILED:
        return  # not a failed request: the state change itself says no, as a 409
    refundable = _refundable(session, orders.lock(session, refund.order_id))
    if refund.amount_minor > refundable:
        raise RefundExceedsCaptured(
            f"Refund {refund.id} is for {refund.amount_minor} {refund.currency} minor units; "
            f"only {refundable} can still be refunded (other refunds took the rest since it "
            "failed).",
            refundable=refundable,
        )


# Requesting ---------------------------------------------------------------------------------


def request_refund(
    session: Session, ctx: RefundsContext, caller: Principal, body: RefundCreate, now: datetime
) -> Refund:
    """Ask for money back on a paid order; approved at once when the policy allows."""
    order = orders.get_visible(session, caller, body.order_id, for_update=True)
    if order.status not in REFUNDABLE or order.paid_payment_id is None:
        raise OrderNotPaid(f"Order {order.id} is {order.status}; only paid orders can be refunded.")
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


def start_duplicate_refund(session: Session, payment_id: str, now: datetime) -> Refund | None:
    """Refund a duplicate capture through its own channel, approved by the system."""
    payment = payments.get_payment(session, payment_id)
    # The order first, as every flow locks (order, then payment): claiming the payment and
    # then inserting a refund, whose key check takes a lock on the order, deadlocked with a
    # capture that holds the order and waits for the payment.
    orders.lock(session, payment.order_id)
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
        reason_text="The order was already paid; this second payment goes back automatically.",
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


# Deciding -----------------------------------------------------------------------------------


def _source_account(refund: Refund) -> str:
    """Where refunded money is taken from: revenue, or what a duplicate left owed."""
    return (
        ledger_accounts.DUPLICATE_PAYMENTS_PAYABLE
        if refund.kind == "duplicate"
        else ledger_accounts.PLATFORM_REVENUE
    )


def _send(session: Session, refund: Refund, now: datetime) -> None:
    """Move the money to `refunds_in_flight` and queue the gateway call under a fresh number."""
    refund.gateway_attempts += 1
    refund.out_refund_no = (
        refund.id if refund.gateway_attempts == 1 else f"{refund.id}-{refund.gateway_attempts}"
    )
    refund.needs_gateway_call = True
    refund.next_check_at = now
    refund.failure_code = refund.failure_message = None
    # A new number is a new refund at the gateway: the id of the one that failed names no
    # refund of this attempt, and would make its own outcome look like another refund's.
    refund.gateway_refund_no = None
    _post(
        session,
        refund,
        "refund_sent",
        debit=_source_account(refund),
        credit=ledger_accounts.REFUNDS_IN_FLIGHT,
        now=now,
    )


SENT_BY_THE_REQUEST_FOR = timedelta(seconds=30)
"""How long the send job leaves an approved refund to the request that is sending it (one
gateway attempt: 5 s to connect, 10 s to read, and a margin): two sends at once would make
two calls at the gateway under one refund number."""


def leave_to_the_request(refund: Refund, now: datetime) -> None:
    """The request that approved the refund sends it now; the send job keeps off it for a
    while, and takes it over (with the same number) if the request could not send it."""
    refund.next_check_at = now + SENT_BY_THE_REQUEST_FOR


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


def approve(
    session: Session, refund: Refund, actor: str, now: datetime, note: str | None = None
) -> Refund:
    """pending_approval → processing: the refund will be sent to the gateway."""
    _transition(session, refund, RefundStatus.PROCESSING, now)
    refund.updated_at = now
    _send(session, refund, now)
    _step(session, refund, "approved", actor, now, note)
    return refund


def reject(session: Session, refund: Refund, actor: str, reason: str, now: datetime) -> Refund:
    """pending_approval → rejected, with the reason the buyer will read."""
    _transition(session, refund, RefundStatus.REJECTED, now)
    refund.rejection_reason = reason
    refund.updated_at = now
    _step(session, refund, "rejected", actor, now, reason)
    _emit(session, "refund.rejected", refund, now)
    return refund


def retry(session: Session, refund: Refund, actor: str, now: datetime) -> Refund:
    """failed → processing: send it again (a new refund number at the gateway)."""
    _take_back_its_amount(session, refund)
    _transition(session, refund, RefundStatus.PROCESSING, now)
    refund.updated_at = now
    _send(session, refund, now)
    _step(session, refund, "retried", actor, now)
    return refund


def resolve_manually(
    session: Session,
    refund: Refund,
    actor: str,
    method: str,
    note: str | None,
    now: datetime,
    policy: RefundSettings,
) -> Refund:
    """failed → succeeded outside the gateway: to the buyer's wallet, or paid offline."""
    if refund.status != RefundStatus.FAILED:
        # processing → succeeded is the gateway's word: a refund still at the gateway holds
        # its amount in refunds_in_flight and may yet be paid there.
        raise RefundNotPending(
            f"Only a failed refund is resolved by hand; this one is {refund.status}.",
            refund_status=refund.status,
        )
    _take_back_its_amount(session, refund)
    refund.resolution = method
    _transition(session, refund, RefundStatus.SUCCEEDED, now)
    target = (
        ledger_accounts.buyer_wallet(refund.user_id)
        if method == "wallet"
        else ledger_accounts.OFFLINE_REFUNDS
    )
    _post(session, refund, "refund_resolved", debit=_source_account(refund), credit=target, now=now)
    _step(session, refund, f"resolved_{method}", actor, now, note)
    _settle(session, refund, now, policy)
    return refund


# Gateway outcomes ---------------------------------------------------------------------------


def refund_request(ctx: RefundsContext, session: Session, refund: Refund) -> RefundRequest:
    """What to send the gateway for this refund's current attempt."""
    payment = payments.get_payment(session, refund.payment_id)
    channel = ctx.payments.registry.get(refund.channel)
    return RefundRequest(
        out_trade_no=payment.id,
        out_refund_no=refund.out_refund_no or refund.id,
        amount=_money(refund),
        total=Money(payment.amount_minor, payment.currency),
        reason=refund.reason,
        notify_url=ctx.payments.notify_url(channel),
        gateway_trade_no=payment.gateway_trade_no,
        note=refund.reason_text,
    )


def call_gateway(ctx: RefundsContext, request: RefundRequest, channel_name: str) -> RefundResult:
    """Send the refund (outside any transaction); a decline comes back as a failed result."""
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


def lock_with_order(session: Session, refund_id: str) -> Refund:
    """Lock the refund's order, then the refund: the order every refund flow locks in."""
    orders.lock(session, get(session, refund_id).order_id)
    return lock(session, refund_id)


def lock(session: Session, refund_id: str) -> Refund:
    refund = session.scalars(
        select(Refund)
        .where(Refund.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if refund is None:
        raise RefundNotFound(f"No such refund: {refund_id}")
    return refund


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
        subject_id=f"{refund.id}:{other}"[:160],
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
    _step(session, refund, "money_returned", actor, now)
    _settle(session, refund, now, policy)


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


# Reading ------------------------------------------------------------------------------------


def get(session: Session, refund_id: str) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise RefundNotFound(f"No such refund: {refund_id}")
    return refund


def by_out_refund_no(session: Session, out_refund_no: str) -> Refund | None:
    return session.scalars(select(Refund).where(Refund.out_refund_no == out_refund_no)).first()


def get_visible(session: Session, caller: Principal, refund_id: str) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None or not can_see(
        caller, owner_app_id=refund.app_id, owner_user_id=refund.user_id
    ):
        raise RefundNotFound(f"No such refund: {refund_id}")
    return refund


def list_refunds(
    session: Session,
    caller: Principal,
    params: PageParams,
    *,
    order_id: str | None,
    status: str | None,
) -> tuple[list[Refund], bool]:
    statement = select(Refund)
    if caller.is_app:
        statement = statement.where(Refund.app_id == caller.id)
    elif not caller.is_staff:
        statement = statement.where(Refund.user_id == caller.id)
    if order_id is not None:
        statement = statement.where(Refund.order_id == order_id)
    if status is not None:
        statement = statement.where(Refund.status == status)
    return page_of(session, statement, Refund.id, params)
