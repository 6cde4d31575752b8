"""What every console page shares: who may do what, and rendering with the console's helpers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse

from knowpay.auth.principals import STAFF_ROLES, Principal, Role
from knowpay.kit.clock import Clock, day_of
from knowpay.kit.config import Settings
from knowpay.web import i18n
from knowpay.web.buyer import REASON_NAMES
from knowpay.web.console.labels import NOTICES, error_message, reason_text, value_label
from knowpay.web.session import page_principal
from knowpay.web.templating import render

READERS = tuple(sorted(STAFF_ROLES))
REFUND_DECIDERS = (Role.ADMIN, Role.FINANCE)
"""As POST /v1/refunds/{id}/approve and /reject allow."""
LIMIT_EDITORS = (Role.ADMIN, Role.FINANCE)
"""As POST/PATCH /v1/admin/limits allow."""
REVIEWERS = (Role.ADMIN, Role.FINANCE, Role.SUPPORT)
"""As POST /v1/admin/risk/reviews/{id}/release and /reject allow."""
REVENUE_READERS = (Role.ADMIN, Role.FINANCE)
"""As GET /v1/admin/reports/revenue allows."""
SETTLEMENT_PAYERS = (Role.ADMIN, Role.FINANCE)
"""As POST /v1/admin/settlements/run and /v1/admin/settlements/{id}/pay allow (every staff
role reads statements, as GET /v1/settlements lets them)."""
SUBSCRIPTION_CANCELERS = (Role.ADMIN, Role.SUPPORT)
"""As POST /v1/subscriptions/{id}/cancel allows staff (finance reads, as GET
/v1/subscriptions lets every staff role)."""

Staff = Annotated[Principal, Depends(page_principal(*READERS))]
RefundDecider = Annotated[Principal, Depends(page_principal(*REFUND_DECIDERS))]
LimitEditor = Annotated[Principal, Depends(page_principal(*LIMIT_EDITORS))]
Reviewer = Annotated[Principal, Depends(page_principal(*REVIEWERS))]
RevenueReader = Annotated[Principal, Depends(page_principal(*REVENUE_READERS))]
SettlementPayer = Annotated[Principal, Depends(page_principal(*SETTLEMENT_PAYERS))]
SubscriptionCanceler = Annotated[Principal, Depends(page_principal(*SUBSCRIPTION_CANCELERS))]


def display_timezone(request: Request) -> str:
    """The time zone every console time is shown in (`limits.timezone`, as render uses); its
    days are the days of the console's date filters and reports."""
    settings: Settings = request.app.state.settings
    return settings.limits.timezone


def today(request: Request) -> date:
    """Today in the console's time zone."""
    clock: Clock = request.app.state.clock
    return day_of(clock.now(), display_timezone(request))


def _translate(message: str) -> str:
    return i18n.current_gettext()(message)


def console_page(
    request: Request,
    template: str,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
    error_values: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render a console page: the staff member's permissions, the notice of a form that just
    succeeded (`?done=`), an error of a form (its sentence filled with `error_values`, when
    it has placeholders), and `label()` for stored values."""
    done = request.query_params.get("done")
    return render(
        request,
        template,
        status_code=status_code,
        staff=principal,
        can_decide_refunds=principal.role in REFUND_DECIDERS,
        can_edit_limits=principal.role in LIMIT_EDITORS,
        can_review=principal.role in REVIEWERS,
        can_read_revenue=principal.role in REVENUE_READERS,
        can_pay_settlements=principal.role in SETTLEMENT_PAYERS,
        can_cancel_subscriptions=principal.role in SUBSCRIPTION_CANCELERS,
        notice=NOTICES.get(done or ""),
        error_code=error,
        error_text=(lambda: error_message(error, _translate, error_values)) if error else None,
        label=lambda value: value_label(value, _translate),
        reason_label=lambda code: _translate(REASON_NAMES[code]) if code in REASON_NAMES else code,
        reason_text=lambda text: reason_text(text, _translate),
        **context,
    )


Cursor = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_]*$")]
"""A list page's `starting_after`: an id, or empty for the first page."""


def status_label(names: Mapping[str, str], status: str) -> str:
    """A status in the page's language (a status without words, as it is)."""
    known = names.get(status)
    return i18n.current_gettext()(known) if known else status
