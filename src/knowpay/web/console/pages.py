"""The console's reading pages: search, an order's story, the queues, channel health,
limits, the audit log and alerts."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from knowpay.alerts import service as alerts
from knowpay.audit import service as audit
from knowpay.auth.principals import Principal
from knowpay.channels.registry import ChannelRegistry
from knowpay.kit.clock import day_start
from knowpay.kit.pagination import PageParams
from knowpay.kit.schemas import EARLIEST_DAY, LATEST_DAY
from knowpay.kit.web import DbSession, SessionRoute
from knowpay.limits import service as limits
from knowpay.payments import service as payments
from knowpay.risk import service as risk
from knowpay.web.console import queries
from knowpay.web.console.common import Staff, console_page, display_timezone
from knowpay.web.console.queries import compact_json
from knowpay.web.session import PageError, mark_page

STATIC = Path(__file__).parent / "static"
router = APIRouter(
    route_class=SessionRoute,
    prefix="/admin",
    dependencies=[Depends(mark_page)],
    include_in_schema=False,
)

Text = Annotated[str, Query(max_length=200)]


def _date(value: str | None) -> date | None:
    """A date from a form field, kept within [EARLIEST_DAY, LATEST_DAY]; empty or malformed
    is no date."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return min(max(day, EARLIEST_DAY), LATEST_DAY)


@router.get("/static/console.css", response_model=None)
def console_css() -> FileResponse:
    """The console's style sheet (served from the package, never from a CDN)."""
    return FileResponse(STATIC / "console.css", media_type="text/css")


@router.get("", response_class=HTMLResponse)
def search_page(
    request: Request,
    staff: Staff,
    session: DbSession,
    q: Text = "",
    start: Text = "",
    end: Text = "",
) -> HTMLResponse:
    """Search orders, payments and refunds; the newest when nothing is asked."""
    query = queries.SearchQuery(
        q=q.strip(), start=_date(start), end=_date(end), timezone=display_timezone(request)
    )
    results = queries.search(session, query, staff)
    return console_page(
        request,
        "console/search.html",
        staff,
        section="search",
        query=query,
        q=q,
        start=start,
        end=end,
        results=results,
        pending_refunds=len(queries.pending_refunds(session)),
        open_reviews=len(risk.list_reviews(session, PageParams(limit=100), "open")[0]),
    )


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(order_id: str, request: Request, staff: Staff, session: DbSession) -> HTMLResponse:
    """An order's full story."""
    story = queries.order_story(session, order_id, staff)
    if story is None:
        raise PageError(404, "order_not_found")
    return console_page(
        request, "console/order.html", staff, section="search", story=story, compact=compact_json
    )


@router.get("/refunds", response_class=HTMLResponse)
def refund_queue(request: Request, staff: Staff, session: DbSession) -> HTMLResponse:
    """Refunds waiting for finance, oldest first."""
    waiting = queries.pending_refunds(session)
    emails = queries.emails_of(session, {r.user_id for r in waiting}, staff)
    return console_page(
        request, "console/refunds.html", staff, section="refunds", refunds=waiting, emails=emails
    )


def refund_queue_with_error(
    request: Request, staff: Principal, session: DbSession, code: str, status: int
) -> HTMLResponse:
    """The queue again, with what went wrong with the form."""
    waiting = queries.pending_refunds(session)
    emails = queries.emails_of(session, {r.user_id for r in waiting}, staff)
    return console_page(
        request,
        "console/refunds.html",
        staff,
        status_code=status,
        error=code,
        section="refunds",
        refunds=waiting,
        emails=emails,
    )


@router.get("/duplicates", response_class=HTMLResponse)
def duplicates_page(request: Request, staff: Staff, session: DbSession) -> HTMLResponse:
    """Payments captured for an order that was already paid or closed."""
    found, has_more = payments.list_duplicates(session, PageParams(limit=100))
    return console_page(
        request,
        "console/duplicates.html",
        staff,
        section="duplicates",
        payments=found,
        has_more=has_more,
    )


def _review_context(session: DbSession, staff: Principal) -> dict[str, Any]:
    waiting, _ = risk.list_reviews(session, PageParams(limit=100), "open")
    decided = [
        d
        for d in risk.list_reviews(session, PageParams(limit=20), None)[0]
        if d.review_status != "open"
    ]
    return {
        "section": "risk",
        "reviews": waiting,
        "decided": decided,
        "emails": queries.emails_of(session, {d.user_id for d in waiting}, staff),
        # A review stays open when its held attempt closes first (the worker expired the
        # order): the queue says so, and offers no Release that would send nothing.
        "payment_status": queries.payment_statuses(session, {d.payment_id for d in waiting}),
    }


@router.get("/risk", response_class=HTMLResponse)
def risk_queue(request: Request, staff: Staff, session: DbSession) -> HTMLResponse:
    """Held payment attempts waiting for staff, newest first, and the last decided ones."""
    return console_page(request, "console/risk.html", staff, **_review_context(session, staff))


def risk_queue_with_error(
    request: Request, staff: Principal, session: DbSession, code: str, status: int
) -> HTMLResponse:
    return console_page(
        request,
        "console/risk.html",
        staff,
        status_code=status,
        error=code,
        **_review_context(session, staff),
    )


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request, staff: Staff) -> HTMLResponse:
    """Each channel: its gateway's breaker, recent success rate and latency (this process)."""
    registry: ChannelRegistry = request.app.state.channel_registry
    views = [
        (channel, registry.health.view(channel.name, channel.gateway)) for channel in registry.all()
    ]
    return console_page(request, "console/channels.html", staff, section="channels", views=views)


def limits_context(session: DbSession, **extra: Any) -> dict[str, Any]:
    return {"section": "limits", "limits": limits.list_limits(session), "form": {}, **extra}


@router.get("/limits", response_class=HTMLResponse)
def limits_page(request: Request, staff: Staff, session: DbSession) -> HTMLResponse:
    """Every spending limit, with forms to add and change them (admin and finance)."""
    return console_page(request, "console/limits.html", staff, **limits_context(session))


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    staff: Staff,
    session: DbSession,
    actor: Text = "",
    action: Text = "",
    object_type: Text = "",
    object_id: Text = "",
    start: Text = "",
    end: Text = "",
    starting_after: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_]*$")] = "",
) -> HTMLResponse:
    """The audit log, newest first, filtered like GET /v1/admin/audit."""
    start_day, end_day, timezone = _date(start), _date(end), display_timezone(request)
    filters = audit.SearchFilters(
        actor=actor.strip() or None,
        action=action.strip() or None,
        object_type=object_type.strip() or None,
        object_id=object_id.strip() or None,
        created_gte=day_start(start_day, timezone) if start_day else None,
        created_lt=day_start(end_day, timezone) if end_day else None,
    )
    found, has_more = audit.search(
        session, filters, PageParams(limit=50, starting_after=starting_after or None)
    )
    return console_page(
        request,
        "console/audit.html",
        staff,
        section="audit",
        records=found,
        has_more=has_more,
        filters={
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "start": start,
            "end": end,
        },
        compact=compact_json,
    )


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request, staff: Staff, session: DbSession, kind: Text = ""
) -> HTMLResponse:
    """Alerts newest first."""
    found, has_more = alerts.list_alerts(session, PageParams(limit=100), kind=kind or None)
    return console_page(
        request,
        "console/alerts.html",
        staff,
        section="alerts",
        alerts=found,
        has_more=has_more,
        kind=kind,
    )
