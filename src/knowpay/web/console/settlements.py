"""The console's creator settlements: monthly statements of what the platform owes each
creator, finance settling a month that has ended and recording payouts (as
/v1/settlements, /v1/admin/settlements/run and …/{id}/pay do)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from knowpay.auth.principals import Principal
from knowpay.kit.clock import day_start
from knowpay.kit.errors import KnowpayError
from knowpay.kit.pagination import PageParams
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.ledger.service import AccountLine
from knowpay.refunds.service import actor_of
from knowpay.settlements import service as settlements
from knowpay.settlements.errors import PeriodNotOver, SettlementNotFound
from knowpay.settlements.models import Settlement
from knowpay.settlements.schemas import SettlementRun
from knowpay.web import i18n
from knowpay.web.buyer import SETTLEMENT_STATUS_NAMES
from knowpay.web.console import queries
from knowpay.web.console.common import (
    Cursor,
    SettlementPayer,
    Staff,
    console_page,
    display_timezone,
    status_label,
    today,
)
from knowpay.web.session import PageError, mark_page
from knowpay.web.templating import format_month, format_when

router = APIRouter(
    route_class=SessionRoute,
    prefix="/admin",
    dependencies=[Depends(mark_page)],
    include_in_schema=False,
)

SEE_OTHER = 303
STATUSES = tuple(SETTLEMENT_STATUS_NAMES)
"""open, paid, superseded, nothing_due: the list's filter."""
LISTED = 50


def _status_label(status: str) -> str:
    return status_label(SETTLEMENT_STATUS_NAMES, status)


def last_month(request: Request) -> str:
    """The month before this one in the console's time zone (`YYYY-MM`): the one to settle."""
    return f"{today(request).replace(day=1) - timedelta(days=1):%Y-%m}"


def _list_page(
    request: Request,
    staff: Principal,
    session: DbSession,
    *,
    status: str = "",
    starting_after: str = "",
    month: str | None = None,
    error: str | None = None,
    error_values: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    status = status if status in STATUSES else ""
    found, has_more = settlements.list_visible(
        session,
        staff,
        PageParams(limit=LISTED, starting_after=starting_after or None),
        creator_id=None,
        status=status or None,
    )
    return console_page(
        request,
        "console/settlements.html",
        staff,
        status_code=status_code,
        error=error,
        error_values=error_values,
        section="settlements",
        settlements=found,
        has_more=has_more,
        emails=queries.emails_of(session, {s.creator_id for s in found}, staff),
        status=status,
        statuses=STATUSES,
        status_label=_status_label,
        month_value=last_month(request) if month is None else month,
    )


@router.get("/settlements", response_class=HTMLResponse)
def settlements_page(
    request: Request,
    staff: Staff,
    session: DbSession,
    status: Annotated[str, Query(max_length=20)] = "",
    starting_after: Cursor = "",
) -> HTMLResponse:
    """Creators' statements, newest first (by status), and the form to settle a month."""
    return _list_page(request, staff, session, status=status, starting_after=starting_after)


@router.post("/settlements/run", response_model=None)
def settle_month(
    request: Request,
    staff: SettlementPayer,
    session: DbSession,
    clock: AppClock,
    month: Annotated[str, Form(max_length=20)] = "",
) -> RedirectResponse | HTMLResponse:
    """Finance settles a month that has ended: one statement per creator and currency with
    anything owed or moved, made once (as POST /v1/admin/settlements/run)."""
    typed = month.strip()
    try:
        first_day = SettlementRun(month=typed).first_day()
    except ValidationError:
        return _list_page(
            request, staff, session, month=typed, error="invalid_month", status_code=422
        )
    timezone = display_timezone(request)
    try:
        made = settlements.settle(session, first_day, timezone, clock.now())
    except PeriodNotOver:
        session.rollback()
        ends = day_start(settlements.month_after(first_day), timezone)
        locale = i18n.locale_for(request)  # formatted here, before render sets the locale
        values = {
            "month": format_month(first_day, locale),
            "end": format_when(ends, timezone, locale=locale),
        }
        return _list_page(
            request,
            staff,
            session,
            month=typed,
            error="period_not_over",
            error_values=values,
            status_code=422,
        )
    except KnowpayError as exc:
        session.rollback()
        return _list_page(
            request, staff, session, month=typed, error=exc.code, status_code=exc.status
        )
    done = "settlements_made" if made else "settlements_none_made"
    return RedirectResponse(f"/admin/settlements?done={done}&ref={typed}", status_code=SEE_OTHER)


def _detail_page(
    request: Request,
    staff: Principal,
    session: DbSession,
    settlement: Settlement,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lines = settlements.lines(session, settlement, display_timezone(request))
    return console_page(
        request,
        "console/settlement.html",
        staff,
        status_code=status_code,
        error=error,
        section="settlements",
        s=settlement,
        creator_email=queries.emails_of(session, {settlement.creator_id}, staff).get(
            settlement.creator_id, settlement.creator_id
        ),
        # Owed to the creator positive (a share), taken back or paid out negative.
        lines=[_line(line) for line in lines],
        status_label=_status_label,
    )


def _line(line: AccountLine) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "amount": -line.amount_minor,
        "order_id": line.order_id,
        "entry_id": line.entry_id,
        "at": line.created_at,
    }


def _visible(session: DbSession, staff: Principal, settlement_id: str) -> Settlement:
    try:
        return settlements.get_visible(session, staff, settlement_id)
    except KnowpayError:
        raise PageError(404, "settlement_not_found") from None


@router.get("/settlements/{settlement_id}", response_class=HTMLResponse)
def settlement_page(
    settlement_id: str, request: Request, staff: Staff, session: DbSession
) -> HTMLResponse:
    """A statement: its figures, the month's lines in the creator's account, its payout."""
    return _detail_page(request, staff, session, _visible(session, staff, settlement_id))


@router.post("/settlements/{settlement_id}/pay", response_model=None)
def pay_settlement(
    settlement_id: str,
    request: Request,
    staff: SettlementPayer,
    session: DbSession,
    clock: AppClock,
    reference: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse | HTMLResponse:
    """Finance records that an open statement was paid out (a bank transfer made outside
    knowpay), with the transfer's reference (as POST /v1/admin/settlements/{id}/pay)."""
    try:
        settlements.pay(
            session, settlement_id, actor_of(staff), reference.strip() or None, clock.now()
        )
    except KnowpayError as exc:
        session.rollback()
        try:
            found = settlements.get_visible(session, staff, settlement_id)
        except SettlementNotFound:
            return _list_page(request, staff, session, error=exc.code, status_code=exc.status)
        return _detail_page(request, staff, session, found, error=exc.code, status_code=exc.status)
    return RedirectResponse(
        f"/admin/settlements/{settlement_id}?done=settlement_paid", status_code=SEE_OTHER
    )
