"""Paying an order from the buyer's knowledge-coin wallet: no gateway, so the attempt is
written, the coins taken and the order paid in one transaction, or nothing changes.

The buyer's payment password guards it: the endpoint tries it first
(`accounts.check_payment_password`) and commits the try, so that the lockout counts it.
In the ledger the coins pass through `channel_clearing:wallet` like a gateway's money: the
capture (clearing → revenue) is the same entry every channel writes, and `wallet_spent`
(buyer's wallet → clearing) takes them from what the platform owed the buyer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from knowpay.auth.principals import Principal
from knowpay.channels.types import PaymentAction
from knowpay.kit import context
from knowpay.kit.config import WalletSettings
from knowpay.kit.ids import new_id
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger.service import Leg, post_entry
from knowpay.limits import service as limits
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.payments.errors import ChannelNotForTopUps
from knowpay.payments.models import Payment
from knowpay.payments.schemas import PaymentCreate
from knowpay.payments.service._shared import _fail, _money
from knowpay.payments.service.capture import record_capture
from knowpay.payments.service.context import PaymentsContext
from knowpay.payments.service.start import require_payable, risk_attempt, with_payer_ip
from knowpay.payments.states import PaymentStatus
from knowpay.risk import service as risk
from knowpay.wallet import service as wallet
from knowpay.wallet.service import WALLET_CHANNEL, Movement, WalletChange


def payer_of(session: Session, caller: Principal, order_id: str) -> str:
    """The buyer whose wallet would pay the order (404 when the caller may not see it)."""
    return orders.get_visible(session, caller, order_id).user_id


def pay_from_wallet(
    session: Session,
    ctx: PaymentsContext,
    settings: WalletSettings,
    caller: Principal,
    order_id: str,
    body: PaymentCreate,
    now: datetime,
) -> Payment:
    """Pay the order from the buyer's balance (the password already checked): the attempt
    succeeded, or failed by risk control; 402 `insufficient_balance` changes nothing."""
    order = orders.get_visible(session, caller, order_id, for_update=True)
    body = with_payer_ip(caller, body)
    payer = _Payer(
        return_url=body.return_url,
        client_ip=body.client_ip,
        device_id=body.device_id,
        options=body.channel_options(),
    )
    return _pay(session, ctx, settings, order, payer, now)


def charge_wallet(
    session: Session,
    ctx: PaymentsContext,
    settings: WalletSettings,
    order_id: str,
    now: datetime,
) -> Payment:
    """Pay the order from the buyer's balance with no buyer present: a renewal the buyer
    authorised with their payment password when they subscribed. The same checks as a
    payment the buyer makes (limits, risk control), and the same outcomes."""
    order = orders.lock(session, order_id)
    return _pay(session, ctx, settings, order, _Payer(), now)


@dataclass(frozen=True, slots=True)
class _Payer:
    """What the payer told about themself (nothing, for a charge made without them)."""

    return_url: str | None = None
    client_ip: str | None = None
    device_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _pay(
    session: Session,
    ctx: PaymentsContext,
    settings: WalletSettings,
    order: Order,
    payer: _Payer,
    now: datetime,
) -> Payment:
    require_payable(order, now)
    if orders.is_top_up(order):
        raise ChannelNotForTopUps("A top-up is paid through a gateway channel, not the wallet.")
    wallet.require_currency(settings, order.currency)
    client_ip = payer.client_ip or context.current().ip
    payment = _attempt(order, payer, now)
    decision = risk.assess(
        session, risk_attempt(payment.id, order, WALLET_CHANNEL, payer.device_id, client_ip), now
    )
    if decision.decision == "allow":
        spend = limits.Spend(
            order.id,
            order.app_id,
            order.user_id,
            WALLET_CHANNEL,
            order.amount_minor,
            order.currency,
        )
        limits.reserve(session, ctx.limit_policy, spend, now)  # refuses with limit_exceeded
    session.add(payment)
    session.flush()
    if decision.decision != "allow":
        # A wallet payment cannot wait for a review: the buyer is told, and may pay through
        # a gateway channel, where a held attempt waits for staff.
        _fail(session, payment, "risk_denied", "Declined by risk control.", now)
        return payment
    _spend_coins(session, payment, now)
    record_capture(session, payment.id, _money(payment), None, now)
    return payment


def _attempt(order: Order, payer: _Payer, now: datetime) -> Payment:
    return Payment(
        id=new_id("pay"),
        order_id=order.id,
        app_id=order.app_id,
        user_id=order.user_id,
        channel=WALLET_CHANNEL,
        status=PaymentStatus.PENDING.value,
        amount_minor=order.amount_minor,
        currency=order.currency,
        is_duplicate=False,
        return_url=payer.return_url,
        client_ip=payer.client_ip,
        options_json=json.dumps(payer.options),
        action_json=json.dumps(PaymentAction(type="none").as_dict()),
        held_for_review=False,
        created_at=now,
        updated_at=now,
    )


def _spend_coins(session: Session, payment: Payment, now: datetime) -> None:
    """The coins leave the wallet (402 if too few) and reach the wallet's clearing account,
    from which the capture books them to revenue."""
    amount = _money(payment)
    wallet.debit(
        session,
        Movement(
            user_id=payment.user_id,
            app_id=payment.app_id,
            amount=amount,
            kind=WalletChange.PAYMENT,
            reference=payment.id,
            order_id=payment.order_id,
            payment_id=payment.id,
        ),
        now,
    )
    post_entry(
        session,
        kind="wallet_spent",
        now=now,
        order_id=payment.order_id,
        payment_id=payment.id,
        legs=[
            Leg(ledger_accounts.buyer_wallet(payment.user_id), amount),
            Leg(ledger_accounts.channel_clearing(WALLET_CHANNEL), -amount),
        ],
    )
