"""Exchange rates and reports for staff: /v1/admin/exchange-rates, /v1/admin/reports/…"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import STAFF_ROLES, Principal, Role
from knowpay.kit.clock import day_of
from knowpay.kit.errors import Unprocessable
from knowpay.kit.pagination import Page
from knowpay.kit.schemas import EARLIEST_DAY, LATEST_DAY, Day
from knowpay.kit.web import AppClock, AppSettings, DbSession, SessionRoute
from knowpay.reports import service
from knowpay.reports.schemas import RateOut, RatesIn, RevenueReport, parse_currency

router = APIRouter(route_class=SessionRoute, prefix="/v1/admin", tags=["admin"])

Staff = Annotated[Principal, Depends(require_roles(*STAFF_ROLES))]
Finance = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.FINANCE))]
MAX_REPORT_DAYS = 366
DAYS = f"YYYY-MM-DD within {EARLIEST_DAY} … {LATEST_DAY} (another is 422)"


class InvalidPeriod(Unprocessable):
    code, title = "invalid_period", "The report period is not valid"


class UnknownCurrency(Unprocessable):
    code, title = "unknown_currency", "No such currency"


@router.put("/exchange-rates", response_model=Page[RateOut])
def put_exchange_rates(
    body: RatesIn, caller: Finance, session: DbSession, clock: AppClock
) -> Page[RateOut]:
    """Load dated exchange rates (a rate for a known currency, base and date replaces it).
    They are used for reporting in a base currency only, never to price an order."""
    stored = service.set_rates(session, body.rates, body.source, clock.now())
    return Page[RateOut](data=[RateOut.of(r) for r in stored], has_more=False)


@router.get("/exchange-rates", response_model=Page[RateOut])
def get_exchange_rates(
    caller: Staff,
    session: DbSession,
    base_currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
) -> Page[RateOut]:
    """Known rates, newest date first (at most 1,000)."""
    rates = service.list_rates(
        session,
        base_currency=base_currency.upper() if base_currency else None,
        currency=currency.upper() if currency else None,
    )
    return Page[RateOut](data=[RateOut.of(r) for r in rates], has_more=False)


@router.get("/reports/revenue", response_model=RevenueReport)
def revenue_report(
    caller: Finance,
    session: DbSession,
    clock: AppClock,
    settings: AppSettings,
    base_currency: Annotated[str, Query(min_length=3, max_length=3)] = "CNY",
    start: Annotated[Day | None, Query(description=f"First day; {DAYS}")] = None,
    end: Annotated[Day | None, Query(description=f"Day after the last; {DAYS}")] = None,
) -> RevenueReport:
    """Net revenue per day and currency in [start, end) (default: the last 30 days), with
    each day translated to `base_currency` at the latest rate on or before it. Days are those
    of `limits.timezone` (the report's `timezone`), as in the console."""
    timezone = settings.limits.timezone
    end = end or day_of(clock.now(), timezone) + timedelta(days=1)
    start = start or end - timedelta(days=30)
    if not start < end or (end - start).days > MAX_REPORT_DAYS:
        raise InvalidPeriod(f"start must be before end, at most {MAX_REPORT_DAYS} days apart.")
    try:
        base = parse_currency(base_currency)
    except ValueError as exc:
        raise UnknownCurrency(str(exc)) from exc
    return service.revenue(session, base, start, end, timezone)
