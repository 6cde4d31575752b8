"""The buyer's subscriptions in the buyer center (/me): each membership renewed from the
knowledge-coin wallet with its status, price per period, the period paid for and the next
renewal (or, while a renewal fails, why, the next try and the renewal's order to pay at the
cashier), and the forms that cancel it at the period's end or resume it. The console's
subscriptions page uses the same words for statuses and reasons."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from knowpay.auth.principals import Principal, Role
from knowpay.catalog import repository as catalog_repository
from knowpay.kit.errors import KnowpayError
from knowpay.kit.pagination import PageParams
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.orders import service as orders
from knowpay.orders.states import OrderStatus
from knowpay.subscriptions import service as subscriptions
from knowpay.subscriptions.endpoints import subscriptions_context
from knowpay.subscriptions.models import Subscription
from knowpay.subscriptions.repository import PAID_ORDER
from knowpay.web import i18n
from knowpay.web.cashier import cashier_path
from knowpay.web.errors import N_
from knowpay.web.session import mark_page, page_principal

Buyer = Annotated[Principal, Depends(page_principal(Role.BUYER, Role.CREATOR))]

SUBSCRIPTION_STATUS_NAMES: dict[str, str] = {
    "active": N_("Active"),
    "past_due": N_("Renewal failed"),
    "canceled": N_("Canceled"),
}
"""A subscription's status, in the buyer's words (the console uses them too)."""
SUBSCRIPTION_ENDING = N_("Ends with this period")
"""An active subscription set to end with the period paid for (`cancel_at_period_end`)."""
CANCEL_REASON_NAMES: dict[str, str] = {
    "requested": N_("Canceled on request"),
    "payment_failed": N_("Ended: the renewal could not be paid"),
    "price_increased": N_("Ended: the price went up, and a higher price needs your consent"),
    "period_changed": N_("Ended: the membership's period changed, which needs your consent"),
    "product_unavailable": N_("Ended: the membership is no longer sold"),
}
"""Why a subscription ended (`cancel_reason`), in the buyer's words (the console's too)."""
RENEWAL_FAILURES: dict[str, str] = {
    "insufficient_balance": N_("Your knowledge-coin balance was too low."),
    "limit_exceeded": N_("The renewal was over your payment limit."),
    "risk_denied": N_("For your security the renewal was declined. Contact support if needed."),
}
DEFAULT_RENEWAL_FAILURE = N_("The renewal payment did not go through.")
RENEWAL_PAID = N_("Renewal paid")
"""A failing renewal whose order the buyer paid at the cashier: the worker's next run finds it
paid and renews the subscription."""
SUBSCRIPTION_NOTICES: dict[str, str] = {
    "ending": N_(
        "Your subscription will end with the period you have paid for. It will not renew."
    ),
    "ended": N_("Your subscription has ended. What you have paid for stays yours."),
    "resumed": N_("Your subscription will renew again at the end of the period."),
}
"""What the buyer center says after a subscription's form (`?subscription=`)."""
LISTED = PageParams(limit=100)
"""How many of the buyer's latest subscriptions the buyer center lists (live ones and ended)."""


def product_titles(session: Session, product_ids: Iterable[str]) -> dict[str, str]:
    """product id → title (the id itself for a product that is gone)."""
    titles = {}
    for product_id in set(product_ids):
        product = catalog_repository.get(session, product_id)
        titles[product_id] = product.title if product else product_id
    return titles


def subscription_status_text(subscription: Subscription, _: i18n.Gettext) -> str:
    """The status in words; an active one set to end with its period says so."""
    if subscription.status == "active" and subscription.cancel_at_period_end:
        return _(SUBSCRIPTION_ENDING)
    known = SUBSCRIPTION_STATUS_NAMES.get(subscription.status)
    return _(known) if known else subscription.status


def cancel_reason_text(subscription: Subscription, _: i18n.Gettext) -> str | None:
    """Why it ended, in words (None while it lives)."""
    reason = subscription.cancel_reason
    if subscription.status != "canceled" or reason is None:
        return None
    known = CANCEL_REASON_NAMES.get(reason)
    return _(known) if known else reason


def _renewal_order(
    session: Session, buyer: Principal, subscription: Subscription, now: datetime
) -> tuple[str | None, bool]:
    """For a failing renewal: the cashier of its order while that can still be paid (through
    any channel), and whether it has been paid there (the worker's next run then renews it
    without charging)."""
    if subscription.status != "past_due" or subscription.latest_order_id is None:
        return None, False
    try:
        order = orders.get_visible(session, buyer, subscription.latest_order_id)
    except KnowpayError:
        return None, False
    payable = order.status == OrderStatus.CREATED and not orders.is_expired(order, now)
    return (cashier_path(order.id) if payable else None), order.status in PAID_ORDER


def subscriptions_view(
    session: Session, buyer: Principal, _: i18n.Gettext, now: datetime
) -> list[dict[str, Any]]:
    """The buyer's subscriptions, newest first: each with its status, price per period, the
    period paid for, the next renewal (or, failing, why and the next try, and the renewal's
    order to pay at the cashier) and which of its forms apply."""
    found, _more = subscriptions.list_visible(session, buyer, LISTED, user_id=None, status=None)
    titles = product_titles(session, (s.product_id for s in found))
    views = []
    for s in found:
        ending = s.status == "active" and s.cancel_at_period_end
        pay_url, renewal_paid = _renewal_order(session, buyer, s, now)
        failing = s.status == "past_due" and not renewal_paid
        failure = RENEWAL_FAILURES.get(s.last_failure_code or "", DEFAULT_RENEWAL_FAILURE)
        views.append(
            {
                "id": s.id,
                "title": titles[s.product_id],
                "status": s.status,
                "status_text": _(RENEWAL_PAID) if renewal_paid else subscription_status_text(s, _),
                "ending": ending,
                "amount": s.amount_minor,
                "currency": s.currency,
                "period_days": s.period_days,
                "period_end": s.current_period_end,
                "next_renewal": s.next_attempt_at if s.status == "active" and not ending else None,
                "next_try": s.next_attempt_at if s.status == "past_due" else None,
                "failure": _(failure) if failing else None,
                "renewal_paid": renewal_paid,
                "pay_url": pay_url,
                "ended_at": s.canceled_at,
                "end_reason": cancel_reason_text(s, _),
                "can_cancel": s.status in ("active", "past_due") and not ending,
                "can_resume": ending,
            }
        )
    return views


router = APIRouter(
    route_class=SessionRoute, include_in_schema=False, dependencies=[Depends(mark_page)]
)


def _back_from_subscription(subscription_id: str, query: str) -> RedirectResponse:
    anchor = quote(f"subscription-{subscription_id}", safe="-_")
    return RedirectResponse(f"/me?{query}#{anchor}", status_code=303)


@router.post("/me/subscriptions/{subscription_id}/cancel")
def cancel_subscription(
    subscription_id: str, request: Request, buyer: Buyer, session: DbSession, clock: AppClock
) -> Response:
    """No more renewals: the subscription ends with the period paid for (one whose renewal
    is failing has no paid period to wait for, and ends now), as
    `POST /v1/subscriptions/{id}/cancel` does for its buyer."""
    try:
        subscription = subscriptions.cancel(
            session, subscriptions_context(request), buyer, subscription_id, True, clock.now()
        )
    except KnowpayError as exc:
        session.rollback()
        return _back_from_subscription(subscription_id, f"error={exc.code}")
    done = "ended" if subscription.status == "canceled" else "ending"
    return _back_from_subscription(subscription.id, f"subscription={done}")


@router.post("/me/subscriptions/{subscription_id}/resume")
def resume_subscription(
    subscription_id: str, request: Request, buyer: Buyer, session: DbSession, clock: AppClock
) -> Response:
    """Keep renewing a subscription set to end with its period, before it has ended (as
    `POST /v1/subscriptions/{id}/resume`)."""
    try:
        subscription = subscriptions.resume(
            session, subscriptions_context(request), buyer, subscription_id, clock.now()
        )
    except KnowpayError as exc:
        session.rollback()
        return _back_from_subscription(subscription_id, f"error={exc.code}")
    return _back_from_subscription(subscription.id, "subscription=resumed")
