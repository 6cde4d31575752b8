"""The cashier (收银台) at /pay/{order_id}: what the buyer is paying for, the channels that
can pay it, the QR code or the way to the gateway, and the live status until it is paid.

Access is the buyer's own session, or a short-lived signed link the app asked for with
`POST /v1/orders/{id}/cashier-link` (kept in a cookie scoped to that order's cashier, so the
buyer who comes back from the gateway still gets in). Paying goes through the very endpoint
function of `POST /v1/orders/{id}/payments`, so the cashier and the API share one path.

The logged-in buyer may also pay from their knowledge-coin wallet (知识币) with their 6-digit
payment password: the answer is final, so the page goes straight to paid or to the refusal
in plain words. The password is passed on to the endpoint and nowhere else: never logged,
never put back in the page or in a redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from knowpay.accounts import service as accounts
from knowpay.accounts.errors import UserNotFound
from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.catalog import repository as catalog_repository
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import derive_key
from knowpay.kit.errors import KnowpayError
from knowpay.kit.masking import mask_email
from knowpay.kit.proxies import is_ip_address
from knowpay.kit.ratelimit import client_ip
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.orders import service as orders
from knowpay.orders.models import Order
from knowpay.orders.schemas import OrderCreate, OrderItemIn, TopUpCreate
from knowpay.orders.states import OrderStatus
from knowpay.payments import endpoints as payments_api
from knowpay.payments import repository as payments_repository
from knowpay.payments import routing
from knowpay.payments.models import Payment
from knowpay.payments.schemas import PaymentCreate
from knowpay.payments.states import PaymentStatus
from knowpay.wallet import service as wallets
from knowpay.wallet.service import WALLET_CHANNEL
from knowpay.web import i18n
from knowpay.web.errors import N_, message_for
from knowpay.web.session import PageError, PageRedirect, logged_in, login_url, mark_page
from knowpay.web.templating import format_money, format_when, render

CASHIER_LINK_TTL_S = 15 * 60
LINK_COOKIE = "knowpay_cashier"
_EXPIRES = re.compile(r"[0-9]{1,15}")
"""A link's expiry: ASCII digits only (str.isdigit() also takes "²", which int() refuses)."""
PAYER_ROLES = frozenset({Role.BUYER, Role.CREATOR})
_PAYMENT_PASSWORD = re.compile(r"[0-9]{6}")
"""What the wallet's payment password looks like (PaymentCreate checks it again)."""
_TRIES = re.compile(r"[0-9]{1,2}")

CHANNEL_NAMES: dict[str, str] = {
    "alipay_page": N_("Alipay"),
    "alipay_wap": N_("Alipay (phone)"),
    "alipay_qr": N_("Alipay QR code"),
    "wechat_native": N_("WeChat Pay QR code"),
    "wechat_jsapi": N_("WeChat Pay"),
    "wechat_h5": N_("WeChat Pay (phone)"),
    "unionpay": N_("UnionPay card"),
    "stripe": N_("Bank card (Stripe)"),
    "paypal": N_("PayPal"),
    "wallet": N_("Knowledge coins"),
    "test": N_("Test payment"),
}
GATEWAY_NAMES: dict[str, str] = {
    "alipay": N_("Alipay"),
    "wechatpay": N_("WeChat Pay"),
    "unionpay": N_("UnionPay"),
    "stripe": N_("Stripe"),
    "paypal": N_("PayPal"),
    "wallet": N_("Knowledge coins"),
    "test": N_("Test payment"),
}
FAILURE_MESSAGES: dict[str, str] = {
    "channel_unavailable": N_("The payment provider could not be reached."),
    "test_declined": N_("The payment was declined."),
    "card_declined": N_("Your card was declined by the bank."),
    "insufficient_funds": N_("There is not enough money on the account."),
    "expired_card": N_("The card has expired."),
    "TRADE_CLOSED": N_("The payment was closed before it was completed."),
    "CLOSED": N_("The payment was closed before it was completed."),
    "PAYERROR": N_("The payment was declined."),
    "risk_denied": N_("For your security this payment was declined. Contact support if needed."),
    "risk_rejected": N_(
        "Our team checked this payment and did not let it through. Contact support if needed."
    ),
    "order_not_payable": N_("This order can no longer be paid."),
}
OWN_FAILURES = frozenset({"risk_denied", "risk_rejected", "order_not_payable"})
"""Failures knowpay decided itself (risk control, a review, an order that moved on): their
stored text is ours, in English, not the payment provider's reason, so the page shows only
the catalog's sentence."""
DEFAULT_FAILURE = N_("The payment did not go through.")
KIND_NAMES: dict[str, str] = {
    "course": N_("Course"),
    "column": N_("Column"),
    "membership": N_("Membership"),
    "ebook": N_("E-book"),
    "live": N_("Live class"),
}
TOP_UP_TITLE = N_("Knowledge coins top-up")
"""What a top-up order is called on the pages (its stored subject is English)."""
TOP_UP_KIND = N_("Top-up")
ORDER_STATUS_NAMES: dict[str, str] = {
    "created": N_("Waiting for payment"),
    "paid": N_("Paid"),
    "partially_refunded": N_("Partly refunded"),
    "refunded": N_("Refunded"),
    "closed": N_("Closed"),
}


# ---------------------------------------------------------------------------------------
# Signed cashier links


class CashierLinks:
    """`{order_id}.{expires}.{HMAC}` tokens: who holds one may pay that order until then."""

    def __init__(self, master_key: str) -> None:
        self._key = derive_key(master_key, "knowpay/cashier-link/v1")

    def sign(self, order_id: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        return f"{expires}.{self._mac(order_id, expires)}"

    def valid(self, token: str, order_id: str, now: datetime) -> bool:
        """Whether the token was signed for this order and has not expired."""
        expires_text, _, mac = token.partition(".")
        if not _EXPIRES.fullmatch(expires_text) or not mac:
            return False
        expires = int(expires_text)
        signed = hmac.compare_digest(
            mac.encode("ascii", "replace"), self._mac(order_id, expires).encode("ascii")
        )
        return signed and expires > int(now.timestamp())

    def _mac(self, order_id: str, expires: int) -> str:
        message = f"{order_id}\x00{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _links(request: Request) -> CashierLinks:
    state = request.app.state
    links: CashierLinks | None = getattr(state, "cashier_links", None)
    if links is None:
        settings: Settings = state.settings
        links = CashierLinks(settings.secret_key.get_secret_value())
        state.cashier_links = links
    return links


def _now(request: Request) -> datetime:
    clock: Clock = request.app.state.clock
    return clock.now()


def cashier_path(order_id: str) -> str:
    return f"/pay/{quote(order_id, safe='')}"


class CashierLinkOut(BaseModel):
    """A link to the cashier that lets the buyer pay this one order without logging in."""

    object: Literal["cashier_link"] = "cashier_link"
    order_id: str
    url: str = Field(description="Open it in the buyer's browser; valid until `expires_at`")
    expires_at: datetime


api_router = APIRouter(route_class=SessionRoute, prefix="/v1", tags=["orders"])
AppCaller = Annotated[Principal, Depends(require_roles(Role.APP))]


@api_router.post("/orders/{order_id}/cashier-link", response_model=CashierLinkOut)
def create_cashier_link(
    order_id: str, caller: AppCaller, request: Request, session: DbSession, clock: AppClock
) -> CashierLinkOut:
    """A signed link to knowpay's cashier page for one of the app's orders, valid for 15
    minutes: the buyer may see and pay that order with it, nothing else."""
    order = orders.get_visible(session, caller, order_id)
    expires_at = clock.now() + timedelta(seconds=CASHIER_LINK_TTL_S)
    settings: Settings = request.app.state.settings
    token = _links(request).sign(order.id, expires_at)
    url = f"{settings.public_url}{cashier_path(order.id)}?t={token}"
    return CashierLinkOut(order_id=order.id, url=url, expires_at=expires_at)


# ---------------------------------------------------------------------------------------
# Who may use the cashier of an order


_LINK_READER = Principal(id="cashier-link", role=Role.SUPPORT)


@dataclass(frozen=True, slots=True)
class CashierAccess:
    payer: Principal
    order: Order
    link_token: str | None  # set when the access came from a new `?t=` link


def _access(request: Request, session: Session, order_id: str) -> CashierAccess:
    """The buyer's session, or a valid link for this order; login otherwise (404 for an
    order that is not theirs — the page does not tell whether it exists)."""
    request.state.web_page = True
    now, links = _now(request), _links(request)
    fresh = request.query_params.get("t")
    if fresh is not None and not links.valid(fresh, order_id, now):
        # A link that does not hold is refused even when a kept cookie would let the
        # visitor in: the page must not vouch for a link nobody signed.
        raise PageError(403, "invalid_cashier_link")
    token = fresh or request.cookies.get(LINK_COOKIE)
    if token and links.valid(token, order_id, now):
        # The link's signature is the authorization: read the order as the system does.
        order = orders.get_visible(session, _LINK_READER, order_id)
        payer = Principal(id=order.user_id, role=Role.BUYER, app_id=order.app_id)
        return CashierAccess(payer, order, fresh)
    principal = logged_in(request)
    if principal is None:
        raise PageRedirect(login_url(request))
    if principal.role not in PAYER_ROLES:
        raise PageError(403, "forbidden")
    return CashierAccess(principal, orders.get_visible(session, principal, order_id), None)


def _remember_link(request: Request, response: Response, access: CashierAccess) -> None:
    """Keep a fresh link in a cookie for this order's cashier only, until it expires."""
    if access.link_token is None:
        return
    settings: Settings = request.app.state.settings
    expires = int(access.link_token.split(".", 1)[0])
    response.set_cookie(
        LINK_COOKIE,
        access.link_token,
        max_age=max(0, expires - int(_now(request).timestamp())),
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        path=cashier_path(access.order.id),
    )


# ---------------------------------------------------------------------------------------
# What the page shows


def _latest_payment(session: Session, order: Order) -> Payment | None:
    attempts = payments_repository.for_order(session, order.id)
    return attempts[-1] if attempts else None


def cashier_state(order: Order, payment: Payment | None, now: datetime) -> str:
    """One word for what the buyer sees: paid, refunded, partially_refunded (paid, then money
    paid back), expired, pending (an attempt waiting for the payer), failed (the last attempt
    failed) or choose (no attempt yet)."""
    if order.status == OrderStatus.PAID:
        return "paid"
    if order.status in (OrderStatus.REFUNDED, OrderStatus.PARTIALLY_REFUNDED):
        return str(order.status)
    if order.status == OrderStatus.CLOSED or orders.is_expired(order, now):
        return "expired"
    if payment is None:
        return "choose"
    if payment.status == PaymentStatus.PENDING and not payment.held_for_review:
        return "pending"
    if payment.held_for_review:
        return "review"
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CLOSED):
        return "failed"
    return "choose"


def failure_text(payment: Payment, _: i18n.Gettext) -> str:
    """The gateway's reason in plain words (the catalog's sentence for its code)."""
    return _(FAILURE_MESSAGES.get(payment.failure_code or "", DEFAULT_FAILURE))


def gateway_reason(payment: Payment) -> str | None:
    """The payment provider's own words for a failure, when the provider gave them."""
    return None if payment.failure_code in OWN_FAILURES else payment.failure_message


def qr_svg(code_url: str) -> Markup:
    """The QR code of a `code_url` as inline SVG (segno; encoded exactly as given)."""
    qr = segno.make(code_url, error="m", micro=False)
    svg = qr.svg_inline(scale=6, border=2, dark="#111", light="#fff", omitsize=True)
    return Markup(svg)  # noqa: S704 - segno's own SVG markup; the URL is encoded in modules


def _product_lines(session: Session, order: Order, _: i18n.Gettext) -> list[dict[str, Any]]:
    if orders.is_top_up(order):  # no items: the amount the buyer chose, for their wallet
        return [
            {
                "title": _(TOP_UP_TITLE),
                "kind": _(TOP_UP_KIND),
                "period_days": None,
                "quantity": 1,
                "amount": order.amount_minor,
                "creator": None,
            }
        ]
    lines = []
    for item in order.items:
        creator = None
        product = catalog_repository.get(session, item.product_id)
        if product is not None and product.creator_id:
            try:
                creator = mask_email(accounts.get_user(session, product.creator_id).email)
            except UserNotFound:
                creator = None
        lines.append(
            {
                "title": item.title,
                "kind": _(KIND_NAMES.get(item.kind, item.kind)),
                "period_days": item.period_days,
                "quantity": item.quantity,
                "amount": item.amount_minor,
                "creator": creator,
            }
        )
    return lines


def _channel_options(request: Request, order: Order, _: i18n.Gettext) -> list[dict[str, str]]:
    ctx = request.app.state.payments_context
    payer = routing.Payer(device=routing.device_from_user_agent(request.headers.get("user-agent")))
    choices = routing.payable(ctx.registry, list(ctx.preference), order, payer)
    return [
        {
            "name": choice.channel.name,
            "label": _(CHANNEL_NAMES.get(choice.channel.name, choice.channel.name)),
            "gateway": choice.channel.gateway,
            "icon": f"/static/icons/{choice.channel.gateway}.svg",
        }
        for choice in choices
    ]


def _wallet_payer(request: Request, order: Order) -> Principal | None:
    """The logged-in buyer whose wallet may pay this order: the order's own buyer, logged in
    here. A cashier link lets its holder pay through a gateway, but neither see the buyer's
    balance nor spend it."""
    principal = logged_in(request)
    if principal is None or principal.role not in PAYER_ROLES or principal.id != order.user_id:
        return None
    return principal


def _wallet_option(request: Request, session: Session, order: Order) -> dict[str, Any] | None:
    """The knowledge-coin option of the cashier: for an order that is no top-up, in a
    currency the wallet holds, paid by its logged-in buyer; with their balance, and whether
    it is enough (a balance too small is shown, the option disabled)."""
    settings: Settings = request.app.state.settings
    if orders.is_top_up(order) or order.currency not in settings.wallet.currencies:
        return None
    payer = _wallet_payer(request, order)
    if payer is None:
        return None
    held = {w.currency: w.balance_minor for w in wallets.balances(session, payer.id)}
    balance = held.get(order.currency, 0)
    locked_until = accounts.get_user(session, payer.id).payment_password_locked_until
    return {
        "balance": balance,
        "currency": order.currency,
        "enough": balance >= order.amount_minor,
        "locked_until": locked_until if locked_until and locked_until > _now(request) else None,
    }


def _error_text(
    request: Request, code: str, order: Order, wallet: dict[str, Any] | None, _: i18n.Gettext
) -> str:
    """The refusal in plain words; the wallet's refusals with what the buyer needs to know
    (their balance, the tries left, until when the password is locked)."""
    locale = i18n.locale_for(request)
    if code == "insufficient_balance" and wallet is not None:
        return _(
            "Not enough knowledge coins: your balance is %(balance)s and this order costs "
            "%(amount)s.",
            balance=format_money(wallet["balance"], wallet["currency"], locale),
            amount=format_money(order.amount_minor, order.currency, locale),
        )
    tries = request.query_params.get("tries", "")
    if code == "payment_password_incorrect" and _TRIES.fullmatch(tries):
        return _(
            "The payment password is wrong. Tries left before it locks: %(tries)s.",
            tries=int(tries),
        )
    if code == "payment_password_locked" and wallet is not None and wallet["locked_until"]:
        settings: Settings = request.app.state.settings
        until = format_when(wallet["locked_until"], settings.limits.timezone, "short", locale)
        return _(
            "Your payment password is locked after too many wrong tries, until %(time)s. "
            "Choose another payment method, or try again then.",
            time=until,
        )
    return message_for(code, _)


def _page(request: Request, session: Session, access: CashierAccess) -> Response:
    order, now = access.order, _now(request)
    _ = i18n.gettext_for(request)
    payment = _latest_payment(session, order)
    state = cashier_state(order, payment, now)
    action: dict[str, str] = {}
    if payment is not None and payment.action_json and state == "pending":
        action = json.loads(payment.action_json)
    error_code = request.query_params.get("error")
    # "Use another payment method" while an attempt waits: show the channels again.
    view = "choose" if state == "pending" and request.query_params.get("choose") else state
    choosing = view in ("choose", "failed")
    wallet = _wallet_option(request, session, order) if choosing else None
    context: dict[str, Any] = {
        "order": order,
        "order_status": _(ORDER_STATUS_NAMES.get(order.status, order.status)),
        "lines": _product_lines(session, order, _),
        "state": state,
        "view": view,
        "payment": payment,
        "payment_channel": _(CHANNEL_NAMES.get(payment.channel, payment.channel))
        if payment
        else "",
        "action": action,
        "qr": qr_svg(action["code_url"]) if action.get("code_url") else None,
        "failure": failure_text(payment, _) if payment and state == "failed" else None,
        "gateway_reason": gateway_reason(payment) if payment and state == "failed" else None,
        "channels": _channel_options(request, order, _) if choosing else [],
        "wallet": wallet,
        "error": _error_text(request, error_code, order, wallet, _) if error_code else None,
        "seconds_left": max(0, int((order.expires_at - now).total_seconds())),
        "go_url": action.get("url", "") if request.query_params.get("go") else "",
        "status_url": f"{cashier_path(order.id)}/status",
        "cashier_url": cashier_path(order.id),
        "lang_query": _with_lang(request, ""),
    }
    response = render(request, "cashier.html", **context)
    _remember_link(request, response, access)
    return response


cashier_router = APIRouter(
    route_class=SessionRoute, include_in_schema=False, dependencies=[Depends(mark_page)]
)


@cashier_router.get("/pay/{order_id}")
def cashier(order_id: str, request: Request, session: DbSession) -> Response:
    """The cashier page of an order."""
    return _page(request, session, _access(request, session, order_id))


def _back(
    request: Request,
    order_id: str,
    error: str | None = None,
    *,
    go: bool = False,
    tries: int | None = None,
) -> RedirectResponse:
    """Back to the cashier page, in the language the buyer chose with `?lang` if they did
    (with a wrong payment password, the tries left: never the password itself)."""
    query = {"error": error} if error else ({"go": "1"} if go else {})
    if error and tries is not None:
        query["tries"] = str(tries)
    return RedirectResponse(_with_lang(request, cashier_path(order_id), query), status_code=303)


def _tries_left(exc: KnowpayError) -> int | None:
    """The tries a wrong payment password leaves, as the endpoint told them."""
    tries = exc.extra.get("remaining_tries")
    if exc.code != "payment_password_incorrect" or not isinstance(tries, int):
        return None
    return tries if 0 <= tries < 100 else None


def _with_lang(request: Request, path: str, query: dict[str, str] | None = None) -> str:
    """`path` with `query`, carrying the page's one-off `?lang` choice: the cashier's forms,
    redirects and reloads keep the language a link from the app asked for."""
    chosen = i18n.normalize_locale(request.query_params.get(i18n.LANG_PARAM))
    full = {**(query or {}), **({i18n.LANG_PARAM: chosen} if chosen else {})}
    return f"{path}?{urlencode(full)}" if full else path


@cashier_router.post("/pay/{order_id}/payments")
def start_payment(
    order_id: str,
    request: Request,
    session: DbSession,
    clock: AppClock,
    channel: Annotated[str, Form(min_length=1, max_length=32)],
    payment_password: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The buyer chose a channel: open the payment (the API's own code path), then send the
    browser to the gateway, or back to the cashier for the QR code and the live status.
    With the wallet and the payment password the order is paid, or refused, at once."""
    access = _access(request, session, order_id)
    settings: Settings = request.app.state.settings
    peer = client_ip(request)
    payer, password = access.payer, None
    if channel == WALLET_CHANNEL:
        wallet_payer = _wallet_payer(request, access.order)
        if wallet_payer is None:  # only the logged-in buyer spends their coins
            return _back(request, access.order.id, "wallet_login_required")
        if not _PAYMENT_PASSWORD.fullmatch(payment_password):
            return _back(request, access.order.id, "payment_password_format")
        payer, password = wallet_payer, payment_password
    try:
        body = PaymentCreate(
            channel=channel,
            return_url=f"{settings.public_url}{cashier_path(access.order.id)}",
            client_ip=peer if is_ip_address(peer) else None,  # not a Unix socket's name
            payment_password=password,
        )
    except ValidationError:  # a channel name the page never offers; the error is not logged
        return _back(request, access.order.id, "invalid_request")
    try:
        created = payments_api.create_payment(
            access.order.id,
            body,
            payer,
            request,
            session,
            clock,
            request.app.state.payments_context,
            settings,
            request.app.state.secret_hasher,
        )
    except KnowpayError as exc:
        session.rollback()  # a wrong password's try was committed by the endpoint
        return _back(request, access.order.id, exc.code, tries=_tries_left(exc))
    action = created.action or {}
    # To the gateway by way of the cashier: its script moves on to `action.url` at once (a
    # redirect straight from this POST would be a form submission to the gateway's origin,
    # which the pages' `form-action 'self'` policy forbids); without script, one click.
    go = action.get("type") in ("redirect", "client_secret") and bool(action.get("url"))
    return _back(request, access.order.id, go=go)


def restart_out_trade_no(order_id: str) -> str:
    """The out_trade_no of the order that starts `order_id` again: one per old order."""
    return f"{order_id}.again"


@cashier_router.post("/pay/{order_id}/again")
def start_again(order_id: str, request: Request, session: DbSession, clock: AppClock) -> Response:
    """An expired or closed order: a new order with the same items, for the same buyer,
    on behalf of the app that made the first one (its metadata names the old order). Once
    only: a second POST, even at the same moment, leads to the order the first one made."""
    access = _access(request, session, order_id)
    old = access.order
    if cashier_state(old, None, clock.now()) != "expired":
        return _back(request, old.id)
    try:
        new = _order_again(request, session, old, clock.now())
    except KnowpayError as exc:
        return _back(request, old.id, exc.code)
    session.commit()
    if logged_in(request) is not None:
        return RedirectResponse(_with_lang(request, cashier_path(new.id)), status_code=303)
    # Came with a link: the new order gets a link of its own.
    token = _links(request).sign(new.id, clock.now() + timedelta(seconds=CASHIER_LINK_TTL_S))
    return RedirectResponse(
        _with_lang(request, cashier_path(new.id), {"t": token}), status_code=303
    )


def _order_again(request: Request, session: Session, old: Order, now: datetime) -> Order:
    """The expired order made again, as its app would: the same products, or for a top-up
    the same amount. The app's unique (app_id, out_trade_no) makes it idempotent: the order
    already made under it is returned, the one a concurrent POST inserted included."""
    settings: Settings = request.app.state.settings
    app = Principal(id=old.app_id, role=Role.APP, app_id=old.app_id)
    number, metadata = restart_out_trade_no(old.id), {"restarted_from": old.id}
    if orders.is_top_up(old):
        top_up = TopUpCreate(
            user_id=old.user_id,
            amount=old.amount_minor,
            currency=old.currency,
            out_trade_no=number,
            metadata=metadata,
        )
        return orders.create_top_up(session, app, top_up, settings.wallet, now)[0]
    body = OrderCreate(
        user_id=old.user_id,
        items=[OrderItemIn(product_id=i.product_id, quantity=i.quantity) for i in old.items],
        currency=old.currency,
        out_trade_no=number,
        metadata=metadata,
    )
    share = settings.revenue_share.creator_share_bps
    return orders.create_order(session, app, body, now, creator_share_bps=share)[0]


@cashier_router.get("/pay/{order_id}/status")
def cashier_status(order_id: str, request: Request, session: DbSession) -> Response:
    """What the cashier's script polls: the state word, and the payment's status."""
    try:
        access = _access(request, session, order_id)
    except (PageRedirect, PageError, KnowpayError):
        return JSONResponse({"state": "unauthorized"}, status_code=403)
    payment = _latest_payment(session, access.order)
    state = cashier_state(access.order, payment, _now(request))
    body = {
        "order_id": access.order.id,
        "order_status": access.order.status,
        "state": state,
        "payment_status": payment.status if payment else None,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
