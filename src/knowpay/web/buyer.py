"""The buyer center at /me: orders, the content the buyer owns, the knowledge-coin wallet
(balances and recent changes), subscriptions renewed from it (canceled at the period's end
or resumed by a form), refund requests and each refund's progress in plain words; for a
creator, their earnings too (what is owed now and their monthly statements)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from knowpay.auth.principals import STAFF_ROLES, Principal, Role
from knowpay.catalog import repository as catalog_repository
from knowpay.entitlements import service as entitlements
from knowpay.entitlements.errors import EntitlementNotActive
from knowpay.entitlements.models import Entitlement
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.kit.pagination import PageParams
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.orders import service as orders
from knowpay.orders.states import OrderStatus
from knowpay.refunds import endpoints as refunds_api
from knowpay.refunds import service as refunds
from knowpay.refunds.models import Refund
from knowpay.refunds.schemas import RefundCreate, RefundReason
from knowpay.refunds.states import RefundStatus
from knowpay.settlements import service as settlements
from knowpay.wallet import service as wallets
from knowpay.wallet.service import WALLET_CHANNEL, WalletChange
from knowpay.web import i18n
from knowpay.web.cashier import (
    GATEWAY_NAMES,
    KIND_NAMES,
    ORDER_STATUS_NAMES,
    TOP_UP_TITLE,
    cashier_path,
)
from knowpay.web.errors import N_, message_for
from knowpay.web.session import PageError, mark_page, page_principal
from knowpay.web.subscriptions import SUBSCRIPTION_NOTICES, subscriptions_view
from knowpay.web.templating import render

Buyer = Annotated[Principal, Depends(page_principal(Role.BUYER, Role.CREATOR))]

REASON_NAMES: dict[str, str] = {
    RefundReason.ACCIDENTAL_PURCHASE: N_("I bought it by mistake"),
    RefundReason.DUPLICATE_PURCHASE: N_("I paid twice"),
    RefundReason.NOT_AS_DESCRIBED: N_("It is not as described"),
    RefundReason.QUALITY_ISSUE: N_("The quality is poor"),
    RefundReason.TECHNICAL_PROBLEM: N_("It does not work for me"),
    RefundReason.NO_LONGER_NEEDED: N_("I no longer need it"),
    RefundReason.OTHER: N_("Another reason"),
}
REFUND_STATUS_NAMES: dict[str, str] = {
    RefundStatus.PENDING_APPROVAL: N_("Waiting for approval"),
    RefundStatus.PROCESSING: N_("On its way"),
    RefundStatus.SUCCEEDED: N_("Money back"),
    RefundStatus.FAILED: N_("Delayed"),
    RefundStatus.REJECTED: N_("Declined"),
}
WALLET_CHANGE_NAMES: dict[str, str] = {
    WalletChange.TOP_UP: N_("Top-up"),
    WalletChange.PAYMENT: N_("Payment"),
    WalletChange.REFUND: N_("Refund"),
    WalletChange.REFUND_RESOLUTION: N_("Refund paid to wallet"),
}
SETTLEMENT_STATUS_NAMES: dict[str, str] = {
    "open": N_("To be paid"),
    "paid": N_("Paid out"),
    "superseded": N_("Included in a later statement"),
    "nothing_due": N_("Nothing due"),
}
"""A creator's statement, in the creator's words (the console uses them too)."""
STATEMENTS = PageParams(limit=24)
"""How many of a creator's latest monthly statements the buyer center lists."""
WALLET_HISTORY = PageParams(limit=20)
"""How many of the wallet's latest changes the buyer center lists."""
_STAFF_ACTORS = frozenset({"staff", *(role.value for role in STAFF_ROLES)})
REFUNDABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})
_LIST = PageParams(limit=100)


def timeline_steps(refund: Refund, session: Session, _: i18n.Gettext) -> list[dict[str, Any]]:
    """A refund's timeline in plain words: requested → approved by finance → sent to
    Alipay → money back on your account (and the other turns a refund can take)."""
    gateway = refund.channel.split("_", 1)[0]
    gateway = "wechatpay" if gateway == "wechat" else gateway
    gateway_name = _(GATEWAY_NAMES.get(gateway, gateway))
    steps = []
    for entry in refunds.timeline(session, refund.id):
        by_staff = entry.actor.split(":", 1)[0] in _STAFF_ACTORS  # "finance:usr_…"
        texts = {
            "requested": _("You paid this order twice: the second payment goes back by itself")
            if refund.kind == "duplicate"
            else _("Requested"),
            "approved": _("Approved by finance") if by_staff else _("Approved automatically"),
            "rejected": _("Declined by finance"),
            "retried": _("Sent again"),
            "sent_to_gateway": _("Sent to %(gateway)s", gateway=gateway_name),
            "money_returned": _("Money back in your knowledge-coin wallet")
            if refund.channel == WALLET_CHANNEL
            else _("Money back on your account"),
            "resolved_wallet": _("Money back in your knowledge-coin wallet"),
            "resolved_offline": _("Money paid back to you by our team"),
            "gateway_refused": _("%(gateway)s refused it; our team is on it", gateway=gateway_name),
        }
        steps.append(
            {
                "step": entry.step,
                "text": texts.get(entry.step, _("Updated")),
                "at": entry.at,
                "note": entry.note if entry.step == "rejected" else None,
            }
        )
    return steps


def _content(session: Session, entitlement: Entitlement, now: datetime) -> dict[str, Any]:
    product = catalog_repository.get(session, entitlement.product_id)
    active = entitlements.in_force(entitlement, now)
    return {
        "id": entitlement.id,
        "title": product.title if product else entitlement.product_id,
        "kind": product.kind if product else "",
        "valid_until": entitlement.valid_until,
        "revoked": entitlement.revoked_at is not None,
        "active": active,
    }


def wallet_view(
    request: Request, session: Session, buyer: Principal, _: i18n.Gettext
) -> dict[str, Any]:
    """The buyer's knowledge coins: a balance per currency (those the wallet holds, even
    before the first top-up) and the latest changes, newest first."""
    settings: Settings = request.app.state.settings
    held = {w.currency: w.balance_minor for w in wallets.balances(session, buyer.id)}
    for currency in settings.wallet.currencies:
        held.setdefault(currency, 0)
    changes, _more = wallets.list_transactions(session, buyer.id, WALLET_HISTORY)
    return {
        "balances": [{"amount": amount, "currency": cur} for cur, amount in sorted(held.items())],
        "transactions": [
            {
                "id": change.id,
                "kind": change.kind,
                "label": _(WALLET_CHANGE_NAMES.get(change.kind, change.kind)),
                "amount": change.amount_minor,
                "currency": change.currency,
                "balance_after": change.balance_after_minor,
                "at": change.created_at,
            }
            for change in changes
        ],
    }


def earnings_view(session: Session, person: Principal, _: i18n.Gettext) -> dict[str, Any] | None:
    """A creator's earnings: what the platform owes them now per currency, and their latest
    statements, newest first; None for anyone who is not a creator."""
    if person.role is not Role.CREATOR:
        return None
    found, _more = settlements.list_visible(
        session, person, STATEMENTS, creator_id=person.id, status=None
    )
    return {
        "owed": [
            {"amount": m.amount_minor, "currency": m.currency}
            for m in settlements.owed(session, person.id)
        ],
        "statements": [
            {
                "id": s.id,
                "period_start": s.period_start,
                "currency": s.currency,
                "earned": s.earned_minor,
                "reversed": s.reversed_minor,
                "amount": s.amount_minor,
                "status": s.status,
                "status_text": _(SETTLEMENT_STATUS_NAMES.get(s.status, s.status)),
                "paid_at": s.paid_at,
            }
            for s in found
        ],
    }


buyer_router = APIRouter(
    route_class=SessionRoute, include_in_schema=False, dependencies=[Depends(mark_page)]
)


@buyer_router.get("/me")
def buyer_center(request: Request, buyer: Buyer, session: DbSession, clock: AppClock) -> Response:
    """The buyer's orders, content, knowledge coins and refunds; a creator's earnings."""
    _ = i18n.gettext_for(request)
    now = clock.now()
    found, _more = orders.list_orders(session, buyer, _LIST, user_id=None, status=None)
    order_views = []
    for order in found:
        order_refunds, _more = refunds.list_refunds(
            session, buyer, _LIST, order_id=order.id, status=None
        )
        unpaid = order.status == OrderStatus.CREATED and not orders.is_expired(order, now)
        top_up = orders.is_top_up(order)
        open_refund = any(
            r.status in (RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING)
            for r in order_refunds
        )
        order_views.append(
            {
                "order": order,
                # A top-up has no items, and its stored subject is English.
                "subject": _(TOP_UP_TITLE) if top_up else order.subject,
                "status": _(ORDER_STATUS_NAMES.get(order.status, order.status)),
                "pay_url": cashier_path(order.id) if unpaid else None,
                # Top-ups are not refunded on request (docs/wallet.md).
                "refundable": order.status in REFUNDABLE and not open_refund and not top_up,
                "refunds": [
                    {
                        "refund": refund,
                        "status": _(REFUND_STATUS_NAMES.get(refund.status, refund.status)),
                        "steps": timeline_steps(refund, session, _),
                    }
                    for refund in order_refunds
                ],
            }
        )
    owned, _more = entitlements.list_for_user(session, buyer.id, _LIST)
    error = request.query_params.get("error")
    changed = SUBSCRIPTION_NOTICES.get(request.query_params.get("subscription") or "")
    notice = _("Your refund request was sent.") if request.query_params.get("refunded") else None
    return render(
        request,
        "me.html",
        orders=order_views,
        content=[_content(session, e, now) for e in owned],
        wallet=wallet_view(request, session, buyer, _),
        subscriptions=subscriptions_view(session, buyer, _, now),
        earnings=earnings_view(session, buyer, _),
        kinds={key: _(value) for key, value in KIND_NAMES.items()},
        reasons=[(str(reason), _(text)) for reason, text in REASON_NAMES.items()],
        error=message_for(error, _) if error else None,
        notice=_(changed) if changed else notice,
    )


@buyer_router.post("/me/refunds")
def request_refund(
    request: Request,
    buyer: Buyer,
    session: DbSession,
    clock: AppClock,
    order_id: Annotated[str, Form(min_length=1, max_length=40)],
    reason: Annotated[str, Form(min_length=1, max_length=64)],
    reason_text: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Ask for a full refund of an order, exactly as `POST /v1/refunds` does."""
    if reason not in RefundReason.__members__.values():
        reason = RefundReason.OTHER.value
    body = RefundCreate(order_id=order_id, reason=reason, reason_text=reason_text or None)
    try:
        refunds_api.create_refund(
            body, buyer, session, clock, request.app.state.refunds_context, request
        )
    except KnowpayError as exc:
        session.rollback()
        return RedirectResponse(f"/me?error={exc.code}#order-{order_id}", status_code=303)
    return RedirectResponse(f"/me?refunded=1#order-{order_id}", status_code=303)


_OWN_NAVIGATION = frozenset({"same-origin", "none"})
"""`Sec-Fetch-Site` of a navigation the buyer made here: a link on knowpay's own pages, or
the address typed or bookmarked."""


@buyer_router.get("/me/content/{entitlement_id}")
def open_content(
    entitlement_id: str, request: Request, buyer: Buyer, session: DbSession, clock: AppClock
) -> Response:
    """The buyer opens something they own (a stand-in for the platform's player/reader;
    the first opening is noted, as the refund policy asks). A link from another site only
    shows a button: an opening it could note would cost the buyer their unopened refund.
    A browser that sends no `Sec-Fetch-Site` (older than 2023) is taken at its word."""
    now = clock.now()
    entitlement, item = _owned_content(session, buyer, entitlement_id, now)
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None and fetched_from not in _OWN_NAVIGATION:
        return _content_page(request, item, opened=False)
    database: Database = request.app.state.database
    with database.session_scope() as writer:  # a GET's own session only reads
        held = entitlements.get(writer, entitlement.id)
        if held is not None:
            _note_opening(held, now)
    return _content_page(request, item, opened=True)


@buyer_router.post("/me/content/{entitlement_id}")
def open_content_by_button(
    entitlement_id: str, buyer: Buyer, session: DbSession, clock: AppClock
) -> Response:
    """The button a link from another site leads to (the form carries the CSRF token); the
    content is then shown by a GET, so reloading it sends nothing again."""
    now = clock.now()
    entitlement, _item = _owned_content(session, buyer, entitlement_id, now)
    _note_opening(entitlement, now)  # committed with the request
    return RedirectResponse(f"/me/content/{entitlement.id}", status_code=303)


def _owned_content(
    session: Session, buyer: Principal, entitlement_id: str, now: datetime
) -> tuple[Entitlement, dict[str, Any]]:
    """The buyer's entitlement and its page's view; 404 when not theirs, 403 when ended."""
    owned = {e.id: e for e in entitlements.list_for_user(session, buyer.id, _LIST)[0]}
    entitlement = owned.get(entitlement_id)
    if entitlement is None:
        raise PageError(404, "not_found")
    item = _content(session, entitlement, now)
    if not item["active"]:
        raise PageError(403, "forbidden")
    return entitlement, item


def _note_opening(entitlement: Entitlement, now: datetime) -> None:
    try:
        entitlements.record_access(entitlement, now)
    except EntitlementNotActive:  # revoked since it was read (a refund meanwhile)
        raise PageError(403, "forbidden") from None


def _content_page(request: Request, item: dict[str, Any], *, opened: bool) -> Response:
    return render(
        request,
        "content.html",
        item=item,
        opened=opened,
        kind=i18n.gettext_for(request)(KIND_NAMES.get(item["kind"], item["kind"])),
    )
