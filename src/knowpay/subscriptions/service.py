"""Subscribing, renewing from the wallet, dunning and canceling. Never commits.

A subscription does not hold access itself: the membership's entitlement does, and every
period is an ordinary order paid from the wallet (`payments.charge_wallet`), whose capture
extends the entitlement, books the sale and the creator's share, and emits its events like
any other. The subscription decides when to charge, how much at most, and what follows a
failure: the renewal order stays payable through any channel until the next try, a try
that finds it paid (or the membership bought again) renews without charging, and when the
last try fails the subscription is canceled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowpay.accounts.errors import UserNotFound
from knowpay.accounts.models import User
from knowpay.audit import service as audit
from knowpay.auth.principals import Principal, Role
from knowpay.auth.scoping import can_see
from knowpay.catalog import service as catalog
from knowpay.catalog.errors import PriceNotAvailable, ProductNotForSale, ProductNotFound
from knowpay.entitlements import service as entitlements
from knowpay.entitlements.models import Entitlement
from knowpay.kit.config import Settings, SubscriptionSettings, WalletSettings
from knowpay.kit.errors import KnowpayError
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.kit.pagination import PageParams
from knowpay.orders import repository as order_rows
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.orders.schemas import MAX_EXPIRES_IN_S, MIN_EXPIRES_IN_S, OrderCreate, OrderItemIn
from knowpay.orders.states import OrderStatus
from knowpay.payments import service as payments
from knowpay.payments.errors import RiskDenied
from knowpay.payments.service import PaymentsContext
from knowpay.payments.states import PaymentStatus
from knowpay.subscriptions import repository
from knowpay.subscriptions.errors import (
    ProductNotSubscribable,
    SubscriptionExists,
    SubscriptionNotChangeable,
    SubscriptionNotFound,
)
from knowpay.subscriptions.models import Subscription
from knowpay.subscriptions.schemas import SubscriptionCreate, SubscriptionOut
from knowpay.wallet import service as wallet

ORDER_GRACE = timedelta(hours=1)
"""How long a renewal order outlives the next try: the try finds it still payable and
charges it, rather than a new one that a buyer paying at the cashier could pay twice. After
a last, failed try, how long it stays payable (the subscription has ended)."""


@dataclass(frozen=True, slots=True)
class SubscriptionsContext:
    """What subscribing and renewing need from the composition root."""

    payments: PaymentsContext
    wallet: WalletSettings
    policy: SubscriptionSettings
    creator_share_bps: int

    @classmethod
    def of(cls, payments_context: PaymentsContext, settings: Settings) -> SubscriptionsContext:
        return cls(
            payments=payments_context,
            wallet=settings.wallet,
            policy=settings.subscriptions,
            creator_share_bps=settings.revenue_share.creator_share_bps,
        )


def subscribe(
    session: Session,
    ctx: SubscriptionsContext,
    buyer: User,
    body: SubscriptionCreate,
    now: datetime,
) -> Subscription:
    """A buyer (their payment password already checked) subscribes to a membership. Holding
    it already, they pay nothing now; otherwise its first period is paid from the wallet at
    once, and a refusal (402 `insufficient_balance`, a limit, risk control) changes nothing."""
    app = _app_of(buyer)
    product, price = catalog.sellable_price(session, body.product_id, body.currency, app)
    period_days = product.period_days
    if product.kind != "membership" or period_days is None:
        raise ProductNotSubscribable(
            f"Product {product.id} is a {product.kind} without a period: only a membership renews."
        )
    wallet.require_currency(ctx.wallet, price.currency)
    if repository.live_one(session, buyer.id, product.id) is not None:
        raise SubscriptionExists(f"Buyer {buyer.id} already subscribes to {product.id}.")
    held = entitlements.find(session, buyer.id, product.id)
    if held is not None and entitlements.in_force(held, now) and held.valid_until is None:
        raise ProductNotSubscribable(f"Buyer {buyer.id} holds {product.id} for life.")
    subscription = _new(app.id, buyer.id, product.id, period_days, price, now)
    _insert(session, subscription)
    if held is not None and entitlements.in_force(held, now) and held.valid_until is not None:
        _follow(ctx, subscription, held.valid_until)
    else:
        order = _order(session, ctx, subscription, now)
        payment = payments.charge_wallet(session, ctx.payments, ctx.wallet, order.id, now)
        if payment.status != PaymentStatus.SUCCEEDED:
            raise RiskDenied("Risk control declined the first period's payment.")
        subscription.latest_order_id = order.id
        _follow(ctx, subscription, _period_end(session, subscription))
    _emit(session, "subscription.created", subscription, now)
    return subscription


def _app_of(buyer: User) -> Principal:
    """The app the buyer belongs to, in whose name renewal orders are made."""
    if buyer.app_id is None:
        raise UserNotFound(f"No such buyer: {buyer.id}")
    return _app(buyer.app_id)


def _app(app_id: str) -> Principal:
    return Principal(id=app_id, role=Role.APP, app_id=app_id)


def _new(
    app_id: str, user_id: str, product_id: str, period_days: int, price: Money, now: datetime
) -> Subscription:
    return Subscription(
        id=new_id("sub"),
        app_id=app_id,
        user_id=user_id,
        product_id=product_id,
        live_product_id=product_id,
        amount_minor=price.amount_minor,
        currency=price.currency,
        period_days=period_days,
        status="active",
        cancel_at_period_end=False,
        current_period_end=now,
        next_attempt_at=None,
        renewals=0,
        failed_attempts=0,
        created_at=now,
        updated_at=now,
    )


def _insert(session: Session, subscription: Subscription) -> None:
    """Insert it; another request's subscription to the same product, inserted first, is
    409 (the unique key on the live product, not a read that two requests both pass)."""
    try:
        with session.begin_nested():
            session.add(subscription)
            session.flush()
    except IntegrityError:
        raise SubscriptionExists(
            f"Buyer {subscription.user_id} already subscribes to {subscription.product_id}."
        ) from None


def _order(
    session: Session, ctx: SubscriptionsContext, subscription: Subscription, now: datetime
) -> Order:
    """A new order for one period of the membership, in the app's name, numbered by knowpay
    (a number the app could also use would let it put its own order in the renewal's place).
    It is made and paid in one transaction: a try that fails before its commit leaves none."""
    body = OrderCreate(
        user_id=subscription.user_id,
        items=[OrderItemIn(product_id=subscription.product_id, quantity=1)],
        currency=subscription.currency,
        expires_in=int(_order_life(ctx.policy, subscription).total_seconds()),
        metadata={"subscription_id": subscription.id},
    )
    order, _ = orders.create_order(
        session, _app(subscription.app_id), body, now, creator_share_bps=ctx.creator_share_bps
    )
    return order


def _order_life(policy: SubscriptionSettings, subscription: Subscription) -> timedelta:
    """Until just after the next try, should this one fail (the buyer may pay it at the
    cashier meanwhile)."""
    delays = policy.retry_delays_s
    tried = subscription.failed_attempts
    until_next_try = delays[tried] if tried < len(delays) else 0
    seconds = until_next_try + ORDER_GRACE.total_seconds()
    return timedelta(seconds=min(max(seconds, MIN_EXPIRES_IN_S), MAX_EXPIRES_IN_S))


def _period_end(session: Session, subscription: Subscription) -> datetime:
    held = entitlements.find(session, subscription.user_id, subscription.product_id)
    if held is None or held.valid_until is None:  # a paid period grants one, never lifetime
        raise RuntimeError(f"subscription {subscription.id}: a paid period granted no access")
    return held.valid_until


def _follow(ctx: SubscriptionsContext, subscription: Subscription, period_end: datetime) -> None:
    """The access paid for ends then: the next renewal is charged just before."""
    subscription.current_period_end = period_end
    subscription.next_attempt_at = (
        period_end if subscription.cancel_at_period_end else period_end - _lead(ctx, subscription)
    )


def renew_due(
    session: Session, ctx: SubscriptionsContext, subscription_id: str, now: datetime
) -> str | None:
    """Act on one subscription whose time has come, if no other process is on it: end it,
    renew it (from the wallet, or finding its renewal already paid), or record a failed try.
    Returns what happened, None when there was nothing to do."""
    subscription = repository.lock_unless_taken(session, subscription_id)
    if subscription is None or not _due(session, subscription, now):
        return None
    if subscription.cancel_at_period_end:
        _end(session, subscription, "requested", now)
        return "canceled"
    # The failing renewal's order is locked before anything is decided: a payment of it at
    # the cashier (which locks the order first too) is then either seen paid here, or waits
    # and finds it paid by the wallet (a duplicate, refunded). Never paid both ways.
    failing_order = _failing_order(session, subscription, for_update=True)
    if failing_order is not None and failing_order.status in repository.PAID_ORDER:
        return _renewed_at_cashier(session, ctx, subscription, now)
    held = entitlements.find(session, subscription.user_id, subscription.product_id)
    paid_until = _paid_ahead_until(ctx, subscription, held, now)
    if paid_until is not None:
        return _bought_by_hand(session, ctx, subscription, paid_until, now)
    return _charge(session, ctx, subscription, failing_order, now)


def _due(session: Session, subscription: Subscription, now: datetime) -> bool:
    if subscription.status not in repository.LIVE:
        return False
    if subscription.next_attempt_at is not None and subscription.next_attempt_at <= now:
        return True
    failing_order = _failing_order(session, subscription)
    return failing_order is not None and failing_order.status in repository.PAID_ORDER


def _failing_order(
    session: Session, subscription: Subscription, *, for_update: bool = False
) -> Order | None:
    """The order of the renewal now failing (a past-due subscription's latest)."""
    if subscription.status != "past_due" or subscription.latest_order_id is None:
        return None
    return order_rows.get(session, subscription.latest_order_id, for_update=for_update)


def _lead(ctx: SubscriptionsContext, subscription: Subscription) -> timedelta:
    """How long before a period's end its renewal is charged: the setting, but never more
    than half a period (a lead as long as the period would renew it again at once)."""
    half_period = timedelta(days=subscription.period_days) / 2
    return min(timedelta(seconds=ctx.policy.renew_before_s), half_period)


def _paid_ahead_until(
    ctx: SubscriptionsContext,
    subscription: Subscription,
    held: Entitlement | None,
    now: datetime,
) -> datetime | None:
    """The access's end when it already runs past the next renewal's time (the membership
    bought again by hand); None when a renewal is due."""
    if held is None or held.valid_until is None or not entitlements.in_force(held, now):
        return None
    return held.valid_until if held.valid_until - _lead(ctx, subscription) > now else None


def _renewed_at_cashier(
    session: Session, ctx: SubscriptionsContext, subscription: Subscription, now: datetime
) -> str:
    """The failing renewal's order was paid through a gateway: renewed, nothing charged."""
    subscription.renewals += 1
    _recover(subscription, now)
    _follow(ctx, subscription, _period_end(session, subscription))
    _emit(session, "subscription.renewed", subscription, now)
    return "renewed"


def _bought_by_hand(
    session: Session,
    ctx: SubscriptionsContext,
    subscription: Subscription,
    period_end: datetime,
    now: datetime,
) -> str:
    """The buyer bought the membership again: nothing to charge; the renewal follows the
    access's new end (a failing subscription is active again)."""
    was_failing = subscription.status == "past_due"
    _recover(subscription, now)
    _follow(ctx, subscription, period_end)
    if was_failing:
        _emit(session, "subscription.renewed", subscription, now)
        return "renewed"
    return "followed"


def _charge(
    session: Session,
    ctx: SubscriptionsContext,
    subscription: Subscription,
    failing_order: Order | None,
    now: datetime,
) -> str:
    try:
        product, price = catalog.sellable_price(
            session, subscription.product_id, subscription.currency, _app(subscription.app_id)
        )
    except (ProductNotFound, ProductNotForSale, PriceNotAvailable):
        _end(session, subscription, "product_unavailable", now)
        return "canceled"
    # The buyer agreed to a price for a period; anything else needs their consent again.
    if price.amount_minor > subscription.amount_minor:
        _end(session, subscription, "price_increased", now)
        return "canceled"
    if product.period_days != subscription.period_days:
        _end(session, subscription, "period_changed", now)
        return "canceled"
    order = _reusable(ctx, subscription, failing_order, price, now) or _order(
        session, ctx, subscription, now
    )
    if order.amount_minor > subscription.amount_minor:  # the price rose while the order was made
        _end(session, subscription, "price_increased", now)
        return "canceled"
    subscription.latest_order_id = order.id
    failure = _pay(session, ctx, order, now)
    if failure is None:
        subscription.renewals += 1
        _recover(subscription, now)
        _follow(ctx, subscription, _period_end(session, subscription))
        _emit(session, "subscription.renewed", subscription, now)
        return "renewed"
    return _failed(session, ctx, subscription, failure, now)


def _reusable(
    ctx: SubscriptionsContext,
    subscription: Subscription,
    failing_order: Order | None,
    price: Money,
    now: datetime,
) -> Order | None:
    """The failing renewal's order, while it can still be paid and at today's price: this
    try charges it, not a new one that a buyer paying at the cashier could pay besides, and
    it stays payable until just after the next try."""
    if failing_order is None or failing_order.status != OrderStatus.CREATED.value:
        return None
    if orders.is_expired(failing_order, now) or orders.is_closing(failing_order, now):
        return None
    if failing_order.amount_minor != price.amount_minor:  # re-priced: a new order
        return None
    orders.extend_expiry(failing_order, now + _order_life(ctx.policy, subscription), now)
    return failing_order


def _pay(session: Session, ctx: SubscriptionsContext, order: Order, now: datetime) -> str | None:
    """Charge the wallet for the order: None when paid, else why not. Any refusal (too few
    coins, a limit, the wallet's currencies, the order's state) is a failed try, rolled back
    alone (the order stays, payable at the cashier); risk control's decline stays on record
    as a failed payment."""
    try:
        with session.begin_nested():
            payment = payments.charge_wallet(session, ctx.payments, ctx.wallet, order.id, now)
    except KnowpayError as refusal:
        return refusal.code
    if payment.status != PaymentStatus.SUCCEEDED:
        return payment.failure_code or "payment_failed"
    return None


def postpone(session: Session, subscription_id: str, until: datetime, now: datetime) -> None:
    """After an unexpected error: try again later, behind the subscriptions that work (the
    job takes the longest waiting first, a batch at a time)."""
    subscription = repository.get(session, subscription_id, for_update=True)
    if subscription is not None and subscription.status in repository.LIVE:
        subscription.next_attempt_at = until
        subscription.updated_at = now


def _recover(subscription: Subscription, now: datetime) -> None:
    subscription.status = "active"
    subscription.failed_attempts = 0
    subscription.last_failure_code = None
    subscription.updated_at = now


def _failed(
    session: Session,
    ctx: SubscriptionsContext,
    subscription: Subscription,
    failure: str,
    now: datetime,
) -> str:
    """Dunning: the next try after the policy's delay; none left, the end."""
    subscription.failed_attempts += 1
    subscription.last_failure_code = failure
    delays = ctx.policy.retry_delays_s
    if subscription.failed_attempts > len(delays):
        _end(session, subscription, "payment_failed", now)
        return "canceled"
    subscription.status = "past_due"
    subscription.next_attempt_at = now + timedelta(seconds=delays[subscription.failed_attempts - 1])
    subscription.updated_at = now
    _emit(session, "subscription.payment_failed", subscription, now)
    return "failed"


def _end(session: Session, subscription: Subscription, reason: str, now: datetime) -> None:
    """Canceled: no more renewals. What was paid for stays the buyer's."""
    subscription.status = "canceled"
    subscription.live_product_id = None
    subscription.next_attempt_at = None
    subscription.cancel_reason = reason
    subscription.canceled_at = subscription.updated_at = now
    _emit(session, "subscription.canceled", subscription, now)


def cancel(
    session: Session,
    ctx: SubscriptionsContext,
    caller: Principal,
    subscription_id: str,
    at_period_end: bool,
    now: datetime,
) -> Subscription:
    """No more renewals: at the period's end (it stays active until then), or now. A
    subscription whose renewal is failing has no paid period to wait for: it ends now."""
    subscription = _visible(session, caller, subscription_id, for_update=True)
    if subscription.status == "canceled":
        raise SubscriptionNotChangeable(f"Subscription {subscription.id} has ended.")
    before = "canceling" if subscription.cancel_at_period_end else subscription.status
    if at_period_end and subscription.status == "active":
        if not subscription.cancel_at_period_end:
            subscription.cancel_at_period_end = True
            subscription.updated_at = now
            _follow(ctx, subscription, subscription.current_period_end)
            _audit(session, "subscription.canceled", subscription, before, now)
            _emit(session, "subscription.updated", subscription, now)
        return subscription
    _end(session, subscription, "requested", now)
    _audit(session, "subscription.canceled", subscription, before, now)
    return subscription


def resume(
    session: Session,
    ctx: SubscriptionsContext,
    caller: Principal,
    subscription_id: str,
    now: datetime,
) -> Subscription:
    """Undo a cancellation at the period's end, before the period has ended."""
    subscription = _visible(session, caller, subscription_id, for_update=True)
    if subscription.status != "active" or not subscription.cancel_at_period_end:
        raise SubscriptionNotChangeable(
            f"Subscription {subscription.id} is {subscription.status} and not set to end: "
            "there is nothing to resume."
        )
    if subscription.current_period_end <= now:
        # Ended, though the job has not marked it yet: the answer must not hang on its timing.
        raise SubscriptionNotChangeable(
            f"Subscription {subscription.id} ended with its period; subscribe again."
        )
    subscription.cancel_at_period_end = False
    subscription.updated_at = now
    _follow(ctx, subscription, subscription.current_period_end)
    _audit(session, "subscription.resumed", subscription, "canceling", now)
    _emit(session, "subscription.updated", subscription, now)
    return subscription


def _audit(
    session: Session, action: str, subscription: Subscription, before: str, now: datetime
) -> None:
    """A person's or an app's change of a subscription (the worker's are in its events)."""
    audit.record(
        session,
        action=action,
        object_type="subscription",
        object_id=subscription.id,
        before={"status": before},
        after={"status": "canceling" if subscription.cancel_at_period_end else subscription.status},
        now=now,
    )


def _visible(
    session: Session, caller: Principal, subscription_id: str, *, for_update: bool = False
) -> Subscription:
    subscription = repository.get(session, subscription_id, for_update=for_update)
    if subscription is None or not can_see(
        caller, owner_app_id=subscription.app_id, owner_user_id=subscription.user_id
    ):
        raise SubscriptionNotFound(f"No such subscription: {subscription_id}")
    return subscription


def get_visible(session: Session, caller: Principal, subscription_id: str) -> Subscription:
    """A subscription its buyer, their app or staff may see (404 otherwise)."""
    return _visible(session, caller, subscription_id)


def list_visible(
    session: Session,
    caller: Principal,
    params: PageParams,
    *,
    user_id: str | None,
    status: str | None,
) -> tuple[list[Subscription], bool]:
    """Subscriptions the caller may see, newest first."""
    if caller.is_staff:
        return repository.listed(session, params, app_id=None, user_id=user_id, status=status)
    if caller.is_app:
        return repository.listed(session, params, app_id=caller.id, user_id=user_id, status=status)
    if user_id not in (None, caller.id):
        return [], False
    return repository.listed(session, params, app_id=None, user_id=caller.id, status=status)


def due(session: Session, now: datetime, limit: int = 100) -> list[str]:
    return repository.due(session, now, limit)


def to_remind(
    session: Session, ctx: SubscriptionsContext, now: datetime, limit: int = 100
) -> list[str]:
    if ctx.policy.remind_before_s == 0:
        return []
    return repository.to_remind(session, now + timedelta(seconds=ctx.policy.remind_before_s), limit)


def remind(
    session: Session, ctx: SubscriptionsContext, subscription_id: str, now: datetime
) -> bool:
    """Tell the app, once a period, that the renewal will be charged soon
    (`subscription.renewal_upcoming`, with when and how much at most): the buyer may top up
    or cancel. Whether it was sent now (another process may have sent it)."""
    subscription = repository.lock_unless_taken(session, subscription_id)
    lead = timedelta(seconds=ctx.policy.remind_before_s)
    if (
        subscription is None
        or subscription.status != "active"
        or subscription.cancel_at_period_end
        or subscription.next_attempt_at is None
        or subscription.next_attempt_at > now + lead
        or subscription.reminded_for == subscription.current_period_end
    ):
        return False
    subscription.reminded_for = subscription.current_period_end
    _emit(session, "subscription.renewal_upcoming", subscription, now)
    return True


def _emit(session: Session, event_type: str, subscription: Subscription, now: datetime) -> None:
    emit(
        session,
        event_type=event_type,
        data=SubscriptionOut.of(subscription).model_dump(mode="json"),
        stream_key=subscription.id,
        app_id=subscription.app_id,
        now=now,
    )
