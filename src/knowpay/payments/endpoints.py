"""Routes of payments: paying and closing orders, reading and syncing attempts."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import RedirectResponse

from knowpay.accounts import service as accounts
from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.channels.errors import ChannelError, ChannelUnavailable
from knowpay.channels.types import Device
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.ratelimit import enforce, limiter_of
from knowpay.kit.web import AppClock, AppSettings, DbSession, Hasher, SessionRoute
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderAlreadyPaid
from knowpay.orders.schemas import OrderOut
from knowpay.orders.states import OrderStatus
from knowpay.payments import repository, routing, service
from knowpay.payments.errors import (
    ChannelUnavailableError,
    GatewayError,
    NoChannelAvailable,
    RiskDenied,
)
from knowpay.payments.models import Payment
from knowpay.payments.schemas import (
    AdminChannelOut,
    ChannelHealthOut,
    ChannelList,
    PaymentCreate,
    PaymentOut,
)
from knowpay.payments.states import PaymentStatus
from knowpay.wallet.service import WALLET_CHANNEL

logger = logging.getLogger(__name__)
router = APIRouter(route_class=SessionRoute, prefix="/v1", tags=["payments"])

AppCaller = Annotated[Principal, Depends(require_roles(Role.APP))]
Payer = Annotated[Principal, Depends(require_roles(Role.APP, Role.BUYER, Role.CREATOR))]
AppOrStaff = Annotated[
    Principal, Depends(require_roles(Role.APP, Role.ADMIN, Role.FINANCE, Role.SUPPORT))
]


async def _context(request: Request) -> service.PaymentsContext:
    context: service.PaymentsContext = request.app.state.payments_context
    return context


Context = Annotated[service.PaymentsContext, Depends(_context)]


MAX_FAILOVER_ATTEMPTS = 3


# 502 gateway_error: the gateway refused the call or answered out of its protocol.
GATEWAY_REFUSED = problem_responses(502)


@router.post(
    "/orders/{order_id}/payments",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentOut,
    # 402 insufficient_balance, 423 payment_password_locked: paying from the wallet
    responses={**GATEWAY_REFUSED, **problem_responses(402, 423)},
)
def create_payment(
    order_id: str,
    body: PaymentCreate,
    caller: Payer,
    request: Request,
    session: DbSession,
    clock: AppClock,
    ctx: Context,
    settings: AppSettings,
    hasher: Hasher,
) -> PaymentOut:
    """Start paying an order through a channel; `action` says what the payer does next.
    A declined attempt is returned with status `failed`; the buyer may try again.

    Without `channel`, knowpay routes to the preferred channel that can pay the order now,
    and when that gateway cannot be reached it fails over to the next one (each try is an
    attempt of its own). A named channel whose gateway is failing gets `channel_unavailable`
    naming the alternatives.

    With `channel` `wallet` and the buyer's `payment_password` the order is paid from the
    knowledge-coin balance at once (status `succeeded`, action `none`); a wrong password is
    403 `payment_password_incorrect` (423 once locked), too small a balance 402
    `insufficient_balance`, and neither changes anything but the count of wrong tries."""
    if body.channel == WALLET_CHANNEL:
        return _pay_from_wallet(
            order_id, body, caller, request, session, clock, ctx, settings, hasher
        )
    payer = routing.Payer(
        device=body.device or routing.device_from_user_agent(request.headers.get("user-agent")),
        country=body.country,
    )
    excluded: frozenset[str] = frozenset()
    for _ in range(MAX_FAILOVER_ATTEMPTS):
        payment, order = service.start_payment(
            session, ctx, caller, order_id, body, clock.now(), payer=payer, excluded=excluded
        )
        if payment.failure_code == "risk_denied":
            session.commit()  # the denied attempt stays on record
            raise RiskDenied("This payment was declined by risk control.", payment_id=payment.id)
        if payment.held_for_review:  # the gateway hears of it when staff release it
            return PaymentOut.of(payment)
        subject, expires_at = order.subject, order.expires_at
        session.commit()  # the attempt exists before the gateway hears of it
        try:
            result = service.call_gateway_create(ctx, payment, subject, expires_at)
        except ChannelError as exc:
            service.fail_unreachable(session, payment.id, str(exc), clock.now())
            session.commit()
            if not isinstance(exc, ChannelUnavailable):
                raise GatewayError(
                    f"The {payment.channel} gateway refused: {exc}", payment_id=payment.id
                ) from exc
            if body.channel is None:  # the payer did not insist: try the next channel
                excluded |= _same_gateway(ctx, payment.channel)
                continue
            raise _unreachable(ctx, session, payment, payer) from exc
        return PaymentOut.of(service.apply_create_result(session, payment.id, result, clock.now()))
    raise NoChannelAvailable(f"No channel could open a payment for order {order_id} now.")


def _pay_from_wallet(
    order_id: str,
    body: PaymentCreate,
    caller: Principal,
    request: Request,
    session: DbSession,
    clock: AppClock,
    ctx: service.PaymentsContext,
    settings: Settings,
    hasher: SecretHasher,
) -> PaymentOut:
    """The password first (the try is committed, whatever follows), then the coins."""
    payer_id = service.payer_of(session, caller, order_id)
    enforce(request, [(limiter_of(request).payment_password, payer_id)], "payment password tries")
    check = accounts.check_payment_password(
        session,
        hasher,
        user_id=payer_id,
        password=body.payment_password or "",
        now=clock.now(),
        policy=accounts.lockout_policy(settings),
    )
    # The try counts whatever follows: a wrong one towards the lock, a right one resets the
    # count even when the payment is then refused (402, a limit).
    session.commit()
    if not check.verified:
        accounts.refuse_failed_check(check)
    payment = service.pay_from_wallet(
        session, ctx, settings.wallet, caller, order_id, body, clock.now()
    )
    if payment.failure_code == "risk_denied":
        session.commit()  # the denied attempt stays on record
        raise RiskDenied("This payment was declined by risk control.", payment_id=payment.id)
    return PaymentOut.of(payment)


def _same_gateway(ctx: service.PaymentsContext, channel_name: str) -> frozenset[str]:
    gateway = ctx.registry.get(channel_name).gateway
    return frozenset(c.name for c in ctx.registry.all() if c.gateway == gateway)


def _unreachable(
    ctx: service.PaymentsContext, session: DbSession, payment: Payment, payer: routing.Payer
) -> ChannelUnavailableError:
    order = orders.lock(session, payment.order_id)
    others = routing.payable(ctx.registry, list(ctx.preference), order, payer)
    gateway = ctx.registry.get(payment.channel).gateway
    alternatives = [c.channel.name for c in others if c.channel.gateway != gateway]
    session.rollback()
    breaker_open = not ctx.registry.health.is_available(gateway)
    return ChannelUnavailableError(
        f"The {payment.channel} gateway cannot be reached; "
        + (f"try {', '.join(alternatives)}." if alternatives else "try again later."),
        retry_after_s=ctx.registry.health.retry_after_s(gateway) if breaker_open else None,
        payment_id=payment.id,
        alternatives=alternatives,
    )


@router.get("/orders/{order_id}/channels", response_model=ChannelList)
def list_order_channels(
    order_id: str,
    caller: Payer,
    request: Request,
    session: DbSession,
    ctx: Context,
    device: Device | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
) -> ChannelList:
    """The channels that can pay this order now, in the order knowpay prefers them: they
    charge its currency within their limits, serve the payer's device (`device`, else from
    the User-Agent) and country, and their gateway is healthy (an open breaker hides it)."""
    order = orders.get_visible(session, caller, order_id)
    payer = routing.Payer(
        device=device or routing.device_from_user_agent(request.headers.get("user-agent")),
        country=country,
    )
    choices = routing.payable(ctx.registry, list(ctx.preference), order, payer)
    return ChannelList.of(order, payer, choices)


@router.get("/orders/{order_id}/payments", response_model=Page[PaymentOut])
def list_order_payments(
    order_id: str, caller: CurrentPrincipal, session: DbSession
) -> Page[PaymentOut]:
    """Every attempt to pay an order, oldest first."""
    order = orders.get_visible(session, caller, order_id)
    return Page[PaymentOut](
        data=[PaymentOut.of(p) for p in repository.for_order(session, order.id)], has_more=False
    )


@router.post("/orders/{order_id}/close", response_model=OrderOut, responses=GATEWAY_REFUSED)
def close_order(
    order_id: str, caller: AppCaller, session: DbSession, clock: AppClock, ctx: Context
) -> OrderOut:
    """Close an unpaid order and its pending attempts at their gateways."""
    # Not locked here: close_order asks the gateways first, with no transaction open.
    order = orders.get_visible(session, caller, order_id)
    order = service.close_order(session, ctx, order, clock.now())
    if order.status != OrderStatus.CLOSED:
        session.commit()  # the capture found while closing is recorded all the same
        raise OrderAlreadyPaid(f"Order {order.id} was paid before it could be closed.")
    return OrderOut.of(order)


@router.get("/payments/{payment_id}", response_model=PaymentOut)
def read_payment(payment_id: str, caller: CurrentPrincipal, session: DbSession) -> PaymentOut:
    """One payment attempt."""
    return PaymentOut.of(service.get_visible(session, caller, payment_id))


@router.post("/payments/{payment_id}/sync", response_model=PaymentOut, responses=GATEWAY_REFUSED)
def sync_payment(
    payment_id: str, caller: AppOrStaff, session: DbSession, clock: AppClock, ctx: Context
) -> PaymentOut:
    """Ask the gateway now (active query) and record what it says."""
    payment = service.get_visible(session, caller, payment_id)
    session.commit()  # no transaction stays open while the gateway answers
    result = service.query_gateway(ctx, payment)
    return PaymentOut.of(service.apply_query_result(session, payment_id, result, clock.now()))


Staff = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.FINANCE, Role.SUPPORT))]


@router.get("/admin/duplicate-payments", response_model=Page[PaymentOut], tags=["admin"])
def list_duplicate_payments(
    caller: Staff, session: DbSession, params: Annotated[PageParams, Depends(page_params)]
) -> Page[PaymentOut]:
    """Payments captured for an order that was already paid or closed (refunded automatically)."""
    found, has_more = service.list_duplicates(session, params)
    return Page[PaymentOut](data=[PaymentOut.of(p) for p in found], has_more=has_more)


@router.get("/admin/channels", response_model=Page[AdminChannelOut], tags=["admin"])
def list_channels_health(caller: Staff, ctx: Context) -> Page[AdminChannelOut]:
    """Every configured channel: what it serves, its recent success rate, error rate and
    latency (this process's rolling window), and its gateway's circuit breaker."""
    data = [
        AdminChannelOut(
            channel=channel.name,
            gateway=channel.gateway,
            currencies=sorted(channel.profile.currencies),
            devices=sorted(channel.profile.devices),
            countries=sorted(channel.profile.countries),
            health=ChannelHealthOut.of(ctx.registry.health.view(channel.name, channel.gateway)),
        )
        for channel in ctx.registry.all()
    ]
    return Page[AdminChannelOut](data=data, has_more=False)


browser_router = APIRouter(route_class=SessionRoute, tags=["browser"])


_BACK_TO_THE_SHOP: dict[int | str, dict[str, Any]] = {
    status.HTTP_303_SEE_OTHER: {"description": "To the app's return_url, or the cashier page"}
}


@browser_router.get(
    "/return/{payment_id}",
    operation_id="payer_returns",
    response_class=RedirectResponse,
    status_code=status.HTTP_303_SEE_OTHER,
    responses=_BACK_TO_THE_SHOP,
)
@browser_router.post(
    "/return/{payment_id}",
    operation_id="payer_returns_by_post",
    response_class=RedirectResponse,
    status_code=status.HTTP_303_SEE_OTHER,
    responses=_BACK_TO_THE_SHOP,
)
def payer_returns(
    payment_id: str, request: Request, session: DbSession, clock: AppClock, ctx: Context
) -> RedirectResponse:
    """Where a gateway sends the payer's browser back (PayPal after approval, UnionPay's
    front notification, Alipay's return_url): knowpay asks the gateway at once — for PayPal
    that captures the approved order — then sends the browser on to the app's `return_url`,
    or without one to the order's cashier page. Nobody is signed in here, so nothing about
    the payment is shown (a Stripe client_secret is the buyer's alone).
    The browser's word is never taken as proof of payment; only the gateway's answer is."""
    payment = service.get_for_return(session, payment_id)
    # End the read before asking the gateway: the answer is written in a session of its own.
    # A commit keeps what was read; a rollback would expire it, and reading it again would
    # open a new transaction (on SQLite a write lock, which that other session then waits
    # for until the busy timeout) held through the gateway call.
    session.commit()
    if payment.status == PaymentStatus.PENDING:
        try:
            result = service.query_gateway(ctx, payment)
            database: Database = request.app.state.database
            with database.session_scope() as writer:
                payment = service.apply_query_result(writer, payment_id, result, clock.now())
                writer.expunge(payment)
        except KnowpayError as exc:  # the notification or the query job will settle it
            logger.warning("return of %s: active query failed: %s", payment_id, exc)
    target = payment.return_url or ctx.cashier_url(payment.order_id)
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
