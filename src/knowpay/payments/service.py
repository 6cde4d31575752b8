"""Payment attempts and recording a capture exactly once.

`record_capture` is the one place money arrives: payment, ledger entry, entitlements and
outbox events change together in the caller's transaction, under row locks taken in one
order (order, then payment) so that concurrent notifications, queries and closes serialise.
Never commits, but for `close_order`, which commits before it asks the gateways (no lock is
held through a gateway call) and marks the order closing meanwhile.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert, raise_alert_once
from knowpay.audit import service as audit
from knowpay.auth.principals import Principal
from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelDeclined, ChannelError, ChannelUnavailable
from knowpay.channels.registry import ChannelRegistry
from knowpay.channels.types import (
    CHANNEL_GATEWAYS,
    ChannelStatus,
    CreatePaymentRequest,
    CreatePaymentResult,
    PaymentAction,
    PaymentQueryResult,
)
from knowpay.entitlements import service as entitlements
from knowpay.entitlements.schemas import EntitlementOut
from knowpay.kit import context
from knowpay.kit.errors import KnowpayError
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.kit.pagination import PageParams
from knowpay.kit.proxies import is_ip_address
from knowpay.kit.urls import url_origin
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger.service import Leg, post_entry
from knowpay.limits import service as limits
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderAlreadyPaid, OrderExpired, OrderNotFound, OrderNotPayable
from knowpay.orders.models import Order
from knowpay.orders.schemas import OrderOut
from knowpay.orders.states import OrderStatus
from knowpay.payments import repository, routing
from knowpay.payments.errors import (
    AmountMismatch,
    AmountNotSupported,
    ChannelUnavailableError,
    CurrencyNotSupported,
    GatewayError,
    PayerDetailsMissing,
    PaymentNotFound,
    ReturnUrlNotAllowed,
    TradeMismatch,
)
from knowpay.payments.models import Payment
from knowpay.payments.schemas import PaymentCreate, PaymentOut
from knowpay.payments.states import PaymentStatus, next_status
from knowpay.risk import service as risk

logger = logging.getLogger("knowpay.payments")


@dataclass(frozen=True, slots=True)
class PaymentsContext:
    """What payment flows need from the composition root."""

    registry: ChannelRegistry
    public_url: str
    preference: tuple[str, ...] = ()
    """Routing order of channels when the payer names none."""
    limit_policy: limits.LimitPolicy = field(default_factory=limits.LimitPolicy)
    """Where a limit's day begins and when `limit.near` is sent."""
    return_url_origins: tuple[str, ...] = ()
    """Where a buyer-set `return_url` may lead besides `public_url` (CORS and configured)."""

    def allows_buyer_return_to(self, url: str) -> bool:
        """A buyer's own `return_url` must stay on the platform's origins: `/return/{id}`
        sends the browser there from knowpay's address, and must not serve phishing."""
        origin = url_origin(url)
        allowed = {url_origin(known) for known in (self.public_url, *self.return_url_origins)}
        return origin is not None and origin in allowed

    def notify_url(self, channel: Channel) -> str:
        return f"{self.public_url}/notify/{channel.gateway}"

    def return_url(self, payment_id: str) -> str:
        """Where gateways send the payer back: knowpay asks the gateway, then redirects the
        browser to the app's own return_url."""
        return f"{self.public_url}/return/{payment_id}"

    def cashier_url(self, order_id: str) -> str:
        """The order's cashier page (web/cashier.py), which shows the payer how it went."""
        return f"{self.public_url}/pay/{quote(order_id, safe='')}"


class CaptureOutcome(StrEnum):
    RECORDED = "recorded"
    """The capture paid the order."""
    DUPLICATE = "duplicate"
    """Money captured for an order that was already paid or closed: owed back to the buyer."""
    ALREADY_RECORDED = "already_recorded"
    """This capture was recorded before (a repeated notification or query)."""


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


# Starting an attempt ---------------------------------------------------------------------


def start_payment(
    session: Session,
    ctx: PaymentsContext,
    caller: Principal,
    order_id: str,
    body: PaymentCreate,
    now: datetime,
    payer: routing.Payer | None = None,
    excluded: frozenset[str] = frozenset(),
) -> tuple[Payment, Order]:
    """Write a pending attempt for an order that can still be paid (the gateway comes next),
    on the channel asked for, or routed to the preferred one that can pay it now; with the
    order, locked for the rest of the transaction."""
    payer = payer or routing.Payer()
    if body.return_url and not caller.is_app and not ctx.allows_buyer_return_to(body.return_url):
        raise ReturnUrlNotAllowed(
            "A return_url set by a buyer must lead to the platform's own pages: knowpay's "
            "address, a CORS origin or KNOWPAY_RETURN_URL_ORIGINS.",
            errors=[
                {
                    "field": "return_url",
                    "in": "body",
                    "message": "not one of the platform's origins",
                    "type": "return_url_not_allowed",
                }
            ],
        )
    order = orders.get_visible(session, caller, order_id, for_update=True)
    if order.status == OrderStatus.PAID or order.status == OrderStatus.PARTIALLY_REFUNDED:
        raise OrderAlreadyPaid(f"Order {order.id} is already paid.")
    if order.status != OrderStatus.CREATED:
        raise OrderNotPayable(f"Order {order.id} is {order.status}.", order_status=order.status)
    if orders.is_closing(order, now):
        raise OrderNotPayable(f"Order {order.id} is being closed.", order_status="closing")
    if orders.is_expired(order, now):
        raise OrderExpired(
            f"Order {order.id} expired at {order.expires_at.isoformat()}; create a new one."
        )
    if body.channel is not None:
        _check_channel_can_charge(ctx.registry.get(body.channel), order)
        _check_payer_fields(ctx.registry.get(body.channel), body)
    lacking = frozenset(c.name for c in ctx.registry.all() if _missing_payer_fields(c, body))
    channel = routing.choose(
        ctx.registry, list(ctx.preference), order, payer, body.channel, excluded=excluded | lacking
    )
    payment_id = new_id("pay")
    if not caller.is_app:  # only an app reports the payer's address; a buyer's is their own
        peer = context.current().ip
        body = body.model_copy(update={"client_ip": peer if peer and is_ip_address(peer) else None})
    client_ip = body.client_ip or context.current().ip
    decision = risk.assess(session, _risk_attempt(payment_id, order, channel, body, client_ip), now)
    if decision.decision != "deny":
        spend = limits.Spend(
            order.id, order.app_id, order.user_id, channel.name, order.amount_minor, order.currency
        )
        limits.reserve(session, ctx.limit_policy, spend, now)  # refuses with limit_exceeded
    payment = Payment(
        id=payment_id,
        order_id=order.id,
        app_id=order.app_id,
        user_id=order.user_id,
        channel=channel.name,
        status=PaymentStatus.PENDING.value,
        amount_minor=order.amount_minor,
        currency=order.currency,
        is_duplicate=False,
        return_url=body.return_url,
        client_ip=body.client_ip,
        options_json=json.dumps(body.channel_options()),
        held_for_review=decision.decision == "review",
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.flush()
    if decision.decision == "deny":  # kept, so that bursts of denied attempts keep counting
        _fail(session, payment, "risk_denied", "Declined by risk control.", now)
    return payment, order


def _risk_attempt(
    payment_id: str, order: Order, channel: Channel, body: PaymentCreate, client_ip: str | None
) -> risk.RiskAttempt:
    return risk.RiskAttempt(
        payment_id=payment_id,
        order_id=order.id,
        app_id=order.app_id,
        user_id=order.user_id,
        amount_minor=order.amount_minor,
        currency=order.currency,
        channel=channel.name,
        client_ip=client_ip,
        device_id=body.device_id,
    )


def _check_channel_can_charge(channel: Channel, order: Order) -> None:
    if order.currency not in channel.profile.currencies:
        raise CurrencyNotSupported(f"The {channel.name} channel cannot charge {order.currency}.")
    if not channel.profile.can_charge(order.amount_minor, order.currency):
        amount = Money(order.amount_minor, order.currency)
        raise AmountNotSupported(f"The {channel.name} channel cannot charge {amount}.")


def _missing_payer_fields(channel: Channel, body: PaymentCreate) -> list[str]:
    return sorted(f for f in channel.profile.payer_fields if not getattr(body, f, None))


def _check_payer_fields(channel: Channel, body: PaymentCreate) -> None:
    """422 before anything is written when the channel cannot open a trade without a field
    the request left out (an attempt bound to fail would count as a failure for risk)."""
    missing = _missing_payer_fields(channel, body)
    if missing:
        raise PayerDetailsMissing(
            f"The {channel.name} channel needs {', '.join(missing)}.",
            errors=[
                {"field": f, "in": "body", "message": "required by this channel", "type": "missing"}
                for f in missing
            ],
        )


def call_gateway_create(
    ctx: PaymentsContext, payment: Payment, subject: str, expires_at: datetime
) -> CreatePaymentResult:
    """Ask the gateway to open the trade. Called outside any transaction, so no lock is held
    while the network is slow. A decline comes back as a failed result; ChannelUnavailable
    propagates."""
    channel = ctx.registry.get(payment.channel)
    request = CreatePaymentRequest(
        out_trade_no=payment.id,
        amount=_money(payment),
        subject=subject,
        notify_url=ctx.notify_url(channel),
        expires_at=expires_at,
        return_url=ctx.return_url(payment.id),
        client_ip=payment.client_ip,
        options=json.loads(payment.options_json or "{}"),
    )
    try:
        return channel.create_payment(request)
    except ChannelDeclined as declined:
        return CreatePaymentResult(
            status=ChannelStatus.FAILED,
            action=PaymentAction(type="none"),
            failure_code=declined.code,
            failure_message=declined.message,
        )


def apply_create_result(
    session: Session, payment_id: str, result: CreatePaymentResult, now: datetime
) -> Payment:
    """Store what the gateway said on opening the trade (a notification may have come first)."""
    if result.status is ChannelStatus.SUCCEEDED:
        # Paying the order: the order is locked first, as everywhere.
        amount = result.paid_amount or _money(_require(session, payment_id))
        record_capture(session, payment_id, amount, result.gateway_trade_no, now)
    # Only the attempt changes here, so only its row is locked and the order is not read
    # again. No deadlock: a flow that holds the order and waits for this row holds nothing
    # this transaction asks for afterwards.
    locked = _lock_payment(session, payment_id)
    _adopt_gateway_trade_no(session, locked, result.gateway_trade_no, now)
    if locked.action_json is None:
        locked.action_json = json.dumps(result.action.as_dict())
    if result.status is ChannelStatus.FAILED:
        _fail(session, locked, result.failure_code or "declined", result.failure_message, now)
    locked.updated_at = now
    session.flush()
    return locked


def fail_unreachable(session: Session, payment_id: str, reason: str, now: datetime) -> Payment:
    """The gateway could not be reached to open the trade: the attempt fails, the order
    stays payable."""
    payment = _lock_order_then_payment(session, payment_id)[1]
    # Logged as well as stored on the attempt: whoever looks into a 503 starts from the log.
    logger.warning(
        "payment %s on %s failed at the gateway: %s", payment.id, payment.channel, reason
    )
    _fail(session, payment, "channel_unavailable", reason, now)
    # The gateway may have opened the trade before the connection broke: close it there too.
    _close_at_gateway_later(payment, now)
    return payment


def _close_at_gateway_later(payment: Payment, now: datetime) -> None:
    """Leave the gateway-side close of an abandoned attempt to the close_abandoned job."""
    payment.needs_gateway_close = True
    payment.next_gateway_close_at = now


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


def record_failure(
    session: Session,
    payment_id: str,
    code: str,
    message: str | None,
    now: datetime,
    *,
    gateway: str | None = None,
) -> Payment:
    """The gateway says the attempt failed; only a pending attempt changes. `gateway`: the
    gateway whose notification says so, which must be the one that runs the attempt."""
    payment = _lock_order_then_payment(session, payment_id)[1]
    _require_gateway(payment, gateway)
    _fail(session, payment, code, message, now)
    return payment


def _require_gateway(payment: Payment, gateway: str | None) -> None:
    """A gateway's notification speaks only of its own trades: another gateway's attempt is
    no trade of its own (its notification must not pay it, nor book money to the wrong
    channel)."""
    if gateway is not None and CHANNEL_GATEWAYS.get(payment.channel) != gateway:
        raise PaymentNotFound(f"No {gateway} payment {payment.id}")


# Recording a capture ---------------------------------------------------------------------


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


def lock_order_then_payment(session: Session, payment_id: str) -> tuple[Order, Payment]:
    """The attempt and its order, locked in the one order every flow uses."""
    return _lock_order_then_payment(session, payment_id)


def record_capture(
    session: Session,
    payment_id: str,
    amount: Money,
    gateway_trade_no: str | None,
    now: datetime,
    *,
    gateway: str | None = None,
) -> CaptureOutcome:
    """Record money the gateway captured for an attempt, exactly once.

    The first capture of an open order pays it: ledger entry, entitlements, events, and the
    order's other attempts closed. A capture for an order already paid or closed is recorded
    as a duplicate, owed back to the buyer. A repeat of a recorded capture changes nothing.
    AmountMismatch when the gateway's amount or currency is not the attempt's, recorded or
    not; a trade other than the attempt's does not pay it (`_capture_of_another_trade`).
    `gateway`: the gateway whose notification reports it, which must run the attempt
    (PaymentNotFound otherwise)."""
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
        subject_id=f"{payment.id}:{gateway_trade_no}"[:160],
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
    _post_capture(session, payment, "payment_captured", ledger_accounts.PLATFORM_REVENUE, now)
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
        other.status = next_status(other.status, PaymentStatus.CLOSED).value
        other.updated_at = now
        _close_at_gateway_later(other, now)
        _audit_payment(session, "payment.closed", other, PaymentStatus.PENDING.value, now)


def _record_duplicate(session: Session, payment: Payment, now: datetime) -> None:
    payment.is_duplicate = True
    _post_capture(
        session, payment, "duplicate_captured", ledger_accounts.DUPLICATE_PAYMENTS_PAYABLE, now
    )
    _emit_payment(session, "payment.duplicate_detected", payment, now)


# Reading, syncing, closing -----------------------------------------------------------------


def get_payment(session: Session, payment_id: str) -> Payment:
    """A payment by id (PaymentNotFound otherwise)."""
    return _require(session, payment_id)


def list_duplicates(session: Session, params: PageParams) -> tuple[list[Payment], bool]:
    """Every duplicate capture, newest first."""
    return repository.list_duplicates(session, params)


def unrefunded_duplicates(session: Session, limit: int) -> list[Payment]:
    """Duplicate captures that no refund has been started for yet."""
    return repository.unrefunded_duplicates(session, limit)


def claim_duplicate_for_refund(session: Session, payment_id: str, refund_id: str) -> bool:
    """Tie a duplicate capture to its refund; False if another worker did it first."""
    return repository.claim_duplicate(session, payment_id, refund_id)


def get_visible(session: Session, caller: Principal, payment_id: str) -> Payment:
    """A payment the caller may see (through its order); 404 otherwise."""
    payment = repository.get(session, payment_id)
    if payment is None:
        raise PaymentNotFound(f"No such payment: {payment_id}")
    try:
        orders.get_visible(session, caller, payment.order_id)
    except OrderNotFound as exc:
        raise PaymentNotFound(f"No such payment: {payment_id}") from exc
    return payment


def get_for_return(session: Session, payment_id: str) -> Payment:
    """The payment a gateway sends a browser back for (no caller: the id is all we have)."""
    return _require(session, payment_id)


def apply_query_result(
    session: Session, payment_id: str, result: PaymentQueryResult, now: datetime
) -> Payment:
    """Act on what an active query learned: a capture, a failure, or nothing yet."""
    if result.status is ChannelStatus.SUCCEEDED:
        payment = _require(session, payment_id)
        record_capture(
            session, payment_id, result.amount or _money(payment), result.gateway_trade_no, now
        )
    elif result.status is ChannelStatus.FAILED:
        record_failure(
            session, payment_id, result.failure_code or "failed", result.failure_message, now
        )
    elif result.status is ChannelStatus.CLOSED:
        _record_closed_at_gateway(session, payment_id, now)
    return _require(session, payment_id)


def _record_closed_at_gateway(session: Session, payment_id: str, now: datetime) -> None:
    """The gateway closed the trade unpaid (its own time limit, or a close from elsewhere):
    the attempt can never be paid, so it is closed here too; the order stays payable."""
    payment = _lock_order_then_payment(session, payment_id)[1]
    if payment.status != PaymentStatus.PENDING:
        return
    payment.status = next_status(payment.status, PaymentStatus.CLOSED).value
    payment.updated_at = now
    _audit_payment(session, "payment.closed", payment, PaymentStatus.PENDING.value, now)


def gateway_error(channel: str, exc: ChannelError) -> KnowpayError:
    """A channel failure as the problem the caller sees: 503 when it may pass, else 502."""
    if isinstance(exc, ChannelUnavailable):
        return ChannelUnavailableError(
            f"The {channel} gateway cannot be reached: {exc}",
            retry_after_s=getattr(exc, "retry_after_s", None),  # a breaker's time left
        )
    return GatewayError(f"The {channel} gateway refused the call: {exc}")


def query_gateway(ctx: PaymentsContext, payment: Payment) -> PaymentQueryResult:
    """Ask the gateway about an attempt (outside any transaction)."""
    try:
        return ctx.registry.get(payment.channel).query_payment(
            payment.id, gateway_trade_no=payment.gateway_trade_no
        )
    except ChannelError as exc:
        raise gateway_error(payment.channel, exc) from exc


def close_order(session: Session, ctx: PaymentsContext, order: Order, now: datetime) -> Order:
    """Close an unpaid order and its pending attempts at their gateways.

    No lock is held while the gateways answer: a lock held through a gateway call would
    stall every request that needs it (on SQLite, every write) for as long as the gateway
    takes. Instead the order is marked closing (no payment may start meanwhile) and the
    session's transaction is committed; the order is locked again once the gateways have
    answered. If a gateway says an attempt was paid meanwhile, that capture is recorded and
    the order is returned paid instead of closed."""
    order = orders.lock(session, order.id)
    if order.status == OrderStatus.CLOSED:
        return order
    if order.status != OrderStatus.CREATED:
        raise OrderAlreadyPaid(f"Order {order.id} is {order.status} and cannot be closed.")
    order_id = order.id
    order.closing_since = now
    attempts = [
        (payment.id, payment.channel, payment.gateway_trade_no, _money(payment))
        for payment in repository.pending_for_order(session, order_id)
    ]
    session.commit()
    closed_at_gateway: set[str] = set()
    for payment_id, channel, gateway_trade_no, amount in attempts:
        try:
            result = ctx.registry.get(channel).close_payment(
                payment_id, gateway_trade_no=gateway_trade_no
            )
        except ChannelError as exc:
            _payable_again(session, order_id)
            raise gateway_error(channel, exc) from exc
        except KnowpayError:  # the channel is no longer configured here
            _payable_again(session, order_id)
            raise
        if result.status is ChannelStatus.SUCCEEDED:
            paid = result.amount or amount
            try:
                record_capture(session, payment_id, paid, result.gateway_trade_no, now)
            except KnowpayError:  # another amount or trade than the attempt's: not its money
                _payable_again(session, order_id)
                raise
            order = orders.lock(session, order_id)
            order.closing_since = None
            return order
        if result.status is ChannelStatus.CLOSED:
            closed_at_gateway.add(payment_id)
    return _close_locally(session, order_id, closed_at_gateway, now)


def _payable_again(session: Session, order_id: str) -> None:
    """The close could not ask every gateway: it is given up, and its mark taken off."""
    session.rollback()
    orders.lock(session, order_id).closing_since = None
    session.commit()


def _close_locally(
    session: Session, order_id: str, closed_at_gateway: set[str], now: datetime
) -> Order:
    """The order and its pending attempts, closed under the order's lock. An attempt the
    gateway did not say is closed (it could not close it now, or was not asked) is closed
    there by the close_abandoned job."""
    order = orders.lock(session, order_id)
    order.closing_since = None
    if order.status != OrderStatus.CREATED:  # paid while the gateways answered
        return order
    for payment in repository.pending_for_order(session, order_id, for_update=True):
        payment.status = next_status(payment.status, PaymentStatus.CLOSED).value
        payment.updated_at = now
        if payment.id not in closed_at_gateway:
            _close_at_gateway_later(payment, now)
        _audit_payment(session, "payment.closed", payment, PaymentStatus.PENDING.value, now)
    orders.mark_closed(order, now)
    limits.release_order(session, order.id, now)
    orders.record_status_change(session, order, OrderStatus.CREATED.value, now)
    session.flush()
    _emit_order(session, "order.closed", order, now)
    return order
