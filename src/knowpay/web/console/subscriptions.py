"""The console's subscriptions: buyers' memberships renewed from their knowledge coins,
newest first, and admin or support canceling one, now or at its period's end (as
GET /v1/subscriptions and POST /v1/subscriptions/{id}/cancel do)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from knowpay.auth.principals import Principal
from knowpay.kit.errors import KnowpayError
from knowpay.kit.pagination import PageParams
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.subscriptions import service as subscriptions
from knowpay.subscriptions.endpoints import subscriptions_context
from knowpay.subscriptions.models import Subscription
from knowpay.web import i18n
from knowpay.web.console import queries
from knowpay.web.console.common import (
    Cursor,
    Staff,
    SubscriptionCanceler,
    console_page,
    status_label,
)
from knowpay.web.session import mark_page
from knowpay.web.subscriptions import (
    SUBSCRIPTION_STATUS_NAMES,
    cancel_reason_text,
    product_titles,
    subscription_status_text,
)

router = APIRouter(
    route_class=SessionRoute,
    prefix="/admin",
    dependencies=[Depends(mark_page)],
    include_in_schema=False,
)

SEE_OTHER = 303
STATUSES = tuple(SUBSCRIPTION_STATUS_NAMES)
"""active, past_due, canceled: the list's filter."""
LISTED = 50


def _status_label(status: str) -> str:
    return status_label(SUBSCRIPTION_STATUS_NAMES, status)


def _words(message: str, /, **values: object) -> str:
    """`_()` in the language of the page being rendered (for the status and reason texts
    built in Python, translated when the template asks for them)."""
    text = i18n.current_gettext()(message)
    return text % values if values else text


def _list_page(
    request: Request,
    staff: Principal,
    session: DbSession,
    *,
    status: str = "",
    starting_after: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    status = status if status in STATUSES else ""
    found, has_more = subscriptions.list_visible(
        session,
        staff,
        PageParams(limit=LISTED, starting_after=starting_after or None),
        user_id=None,
        status=status or None,
    )
    return console_page(
        request,
        "console/subscriptions.html",
        staff,
        status_code=status_code,
        error=error,
        section="subscriptions",
        subscriptions=found,
        has_more=has_more,
        emails=queries.emails_of(session, {s.user_id for s in found}, staff),
        titles=product_titles(session, (s.product_id for s in found)),
        status=status,
        statuses=STATUSES,
        status_label=_status_label,
        status_text=lambda s: subscription_status_text(s, _words),
        end_reason=lambda s: cancel_reason_text(s, _words),
        is_live=_is_live,
    )


def _is_live(subscription: Subscription) -> bool:
    return subscription.status in ("active", "past_due")


@router.get("/subscriptions", response_class=HTMLResponse)
def subscriptions_page(
    request: Request,
    staff: Staff,
    session: DbSession,
    status: Annotated[str, Query(max_length=20)] = "",
    starting_after: Cursor = "",
) -> HTMLResponse:
    """Subscriptions, newest first (by status), each with its buyer, membership, price per
    period, period paid for, next action and failing renewal; the cancel forms for admin
    and support."""
    return _list_page(request, staff, session, status=status, starting_after=starting_after)


@router.post("/subscriptions/{subscription_id}/cancel", response_model=None)
def cancel_subscription(
    subscription_id: str,
    request: Request,
    staff: SubscriptionCanceler,
    session: DbSession,
    clock: AppClock,
    at_period_end: Annotated[str, Form(max_length=5)] = "",
) -> RedirectResponse | HTMLResponse:
    """Admin or support ends a subscription: now, or with the period its buyer paid for
    (`at_period_end=1`; one whose renewal is failing has none to wait for and ends now), as
    POST /v1/subscriptions/{id}/cancel does."""
    try:
        subscription = subscriptions.cancel(
            session,
            subscriptions_context(request),
            staff,
            subscription_id,
            at_period_end == "1",
            clock.now(),
        )
    except KnowpayError as exc:
        session.rollback()
        return _list_page(request, staff, session, error=exc.code, status_code=exc.status)
    done = "subscription_canceled" if subscription.status == "canceled" else "subscription_ending"
    return RedirectResponse(
        f"/admin/subscriptions?done={done}&ref={subscription.id}", status_code=SEE_OTHER
    )
