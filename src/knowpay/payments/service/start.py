"""Starting an attempt: the pending attempt written under the order's lock, the call that
asks the gateway to open the trade, and storing what the gateway said."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.orm import Session

from knowpay.auth.principals import Principal
from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelDeclined
from knowpay.channels.types import (
    ChannelStatus,
    CreatePaymentRequest,
    CreatePaymentResult,
    PaymentAction,
)
from knowpay.kit import context
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.proxies import is_ip_address
from knowpay.limits import service as limits
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderAlreadyPaid, OrderExpired, OrderNotPayable
from knowpay.orders.models import Order
from knowpay.orders.states import OrderStatus
from knowpay.payments import routing
from knowpay.payments.errors import (
    AmountNotSupported,
    CurrencyNotSupported,
    PayerDetailsMissing,
    ReturnUrlNotAllowed,
)
from knowpay.payments.models import Payment
from knowpay.payments.schemas import PaymentCreate
from knowpay.payments.service._shared import _fail, _lock_payment, _money, _require
from knowpay.payments.service.capture import _adopt_gateway_trade_no, record_capture
from knowpay.payments.service.context import PaymentsContext
from knowpay.payments.states import PaymentStatus
from knowpay.risk import service as risk


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
    require_payable(order, now)
    body = with_payer_ip(caller, body)
    if body.channel is not None:
        _check_channel_can_charge(ctx.registry.get(body.channel), order)
        _check_payer_fields(ctx.registry.get(body.channel), body)
    lacking = frozenset(c.name for c in ctx.registry.all() if _missing_payer_fields(c, body))
    channel = routing.choose(
        ctx.registry, list(ctx.preference), order, payer, body.channel, excluded=excluded | lacking
    )
    payment_id = new_id("pay")
    client_ip = body.client_ip or context.current().ip
    attempt = risk_attempt(payment_id, order, channel.name, body.device_id, client_ip)
    decision = risk.assess(session, attempt, now)
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


def with_payer_ip(caller: Principal, body: PaymentCreate) -> PaymentCreate:
    """Only an app reports the payer's address; a buyer's is the one they call from."""
    if caller.is_app:
        return body
    peer = context.current().ip
    return body.model_copy(update={"client_ip": peer if peer and is_ip_address(peer) else None})


def require_payable(order: Order, now: datetime) -> None:
    """409 unless the order (locked) can still be paid: created, not closing, not expired."""
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


def risk_attempt(
    payment_id: str, order: Order, channel: str, device_id: str | None, client_ip: str | None
) -> risk.RiskAttempt:
    """What risk control is told of an attempt."""
    return risk.RiskAttempt(
        payment_id=payment_id,
        order_id=order.id,
        app_id=order.app_id,
        user_id=order.user_id,
        amount_minor=order.amount_minor,
        currency=order.currency,
        channel=channel,
        client_ip=client_ip,
        device_id=device_id,
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
