"""The console's reports, each a page with a server-drawn chart and `?format=csv`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from knowpay.kit.money import Money, currency_exponent
from knowpay.kit.web import DbSession, SessionRoute
from knowpay.reports.schemas import parse_currency
from knowpay.web import i18n
from knowpay.web.console import charts, reports
from knowpay.web.console.common import (
    RevenueReader,
    Staff,
    console_page,
    display_timezone,
    today,
)
from knowpay.web.console.pages import _date
from knowpay.web.session import mark_page

router = APIRouter(
    route_class=SessionRoute,
    prefix="/admin/reports",
    dependencies=[Depends(mark_page)],
    include_in_schema=False,
)

Text = Annotated[str, Query(max_length=40)]


def _major(amount_minor: int, currency: str) -> Decimal:
    """Minor units as a plain decimal for CSV (9900 CNY → 99.00); a number, not text, so the
    CSV writer leaves a negative amount as it is (reports.csv_cell)."""
    return Decimal(Money(amount_minor, currency).to_decimal_string())


@dataclass(frozen=True)
class Asked:
    """What every report page is asked: the period, and whether as CSV."""

    period: reports.Period
    as_csv: bool

    def csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
        start, end = self.period.start.isoformat(), self.period.end.isoformat()
        return Response(
            reports.csv_bytes(header, rows),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="knowpay-{name}-{start}-{end}.csv"',
                "Cache-Control": "no-store",
            },
        )


def _asked(request: Request, start: Text = "", end: Text = "", format: Text = "html") -> Asked:
    period = reports.Period.of(_date(start), _date(end), today(request), display_timezone(request))
    return Asked(period, as_csv=format == "csv")


ReportQuery = Annotated[Asked, Depends(_asked)]


def _short(day: date) -> str:
    return day.strftime("%m-%d")


@router.get("", response_class=HTMLResponse)
def reports_index(request: Request, staff: Staff) -> HTMLResponse:
    """The list of reports."""
    return console_page(request, "console/reports/index.html", staff, section="reports")


@router.get("/success-rate", response_model=None)
def success_rate(
    request: Request,
    staff: Staff,
    session: DbSession,
    asked: ReportQuery,
) -> Response:
    """Payment attempts per day and the share that succeeded."""
    period = asked.period
    rows = reports.success_rate(session, period)
    if asked.as_csv:
        return asked.csv(
            "success-rate",
            ["day", "attempts", "succeeded", "failed", "pending", "success_rate_percent"],
            [
                (r.day.isoformat(), r.attempts, r.succeeded, r.failed, r.pending, r.rate)
                for r in rows
            ],
        )
    _ = i18n.gettext_for(request)
    chart = charts.line_chart(
        _("Payment success rate"), [_short(r.day) for r in rows], [r.rate for r in rows], "%"
    )
    return console_page(
        request,
        "console/reports/success_rate.html",
        staff,
        section="reports",
        period=period,
        rows=rows,
        chart=chart,
        total_attempts=sum(r.attempts for r in rows),
        total_succeeded=sum(r.succeeded for r in rows),
        total_rate=reports.percent(
            sum(r.succeeded for r in rows), sum(r.attempts - r.pending for r in rows)
        ),
    )


@router.get("/refund-rate", response_model=None)
def refund_rate(
    request: Request,
    staff: Staff,
    session: DbSession,
    asked: ReportQuery,
) -> Response:
    """Money refunded as a share of money captured, per day and currency."""
    period = asked.period
    rows = reports.refund_rate(session, period)
    if asked.as_csv:
        return asked.csv(
            "refund-rate",
            [
                "day",
                "currency",
                "payments",
                "captured",
                "refunds",
                "refunded",
                "refund_rate_percent",
            ],
            [
                (
                    r.day.isoformat(),
                    r.currency,
                    r.payments,
                    _major(r.captured, r.currency),
                    r.refunds,
                    _major(r.refunded, r.currency),
                    r.rate,
                )
                for r in rows
            ],
        )
    _ = i18n.gettext_for(request)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        totals[r.currency][0] += r.captured
        totals[r.currency][1] += r.refunded
    chart = charts.bar_chart(
        _("Refund rate"),
        [f"{_short(r.day)} {r.currency}" for r in rows],
        [r.rate or 0.0 for r in rows],
        "%",
    )
    return console_page(
        request,
        "console/reports/refund_rate.html",
        staff,
        section="reports",
        period=period,
        rows=rows,
        chart=chart,
        totals=[
            (currency, c[0], c[1], reports.percent(c[1], c[0]))
            for currency, c in sorted(totals.items())
        ],
    )


@router.get("/channel-mix", response_model=None)
def channel_mix(
    request: Request,
    staff: Staff,
    session: DbSession,
    asked: ReportQuery,
) -> Response:
    """Captured payments per channel."""
    period = asked.period
    rows = reports.channel_mix(session, period)
    if asked.as_csv:
        return asked.csv(
            "channel-mix",
            ["channel", "currency", "payments", "amount", "share_percent"],
            [
                (r.channel, r.currency, r.payments, _major(r.amount, r.currency), r.share)
                for r in rows
            ],
        )
    _ = i18n.gettext_for(request)
    chart = charts.hbar_chart(
        _("Channel mix"),
        [f"{r.channel} ({r.currency})" for r in rows],
        [r.share or 0 for r in rows],
        "%",
    )
    return console_page(
        request,
        "console/reports/channel_mix.html",
        staff,
        section="reports",
        period=period,
        rows=rows,
        chart=chart,
    )


@router.get("/revenue", response_model=None)
def revenue(
    request: Request,
    staff: RevenueReader,
    session: DbSession,
    asked: ReportQuery,
    base_currency: Text = "CNY",
) -> Response:
    """Net revenue per day from the ledger, in each currency and in a base currency."""
    period = asked.period
    try:
        base = parse_currency(base_currency)
    except ValueError:
        base = "CNY"
    report = reports.revenue_per_day(session, period, base)
    if asked.as_csv:
        return asked.csv(
            "revenue",
            ["day", "currency", "amount", "rate", f"amount_{base}"],
            [
                (
                    d.day.isoformat(),
                    d.currency,
                    _major(d.amount, d.currency),
                    d.rate,
                    None if d.base_amount is None else _major(d.base_amount, base),
                )
                for d in report.days
            ],
        )
    _ = i18n.gettext_for(request)
    per_day: dict[date, int] = dict.fromkeys(period.days(), 0)
    for d in report.days:
        per_day[d.day] = per_day.get(d.day, 0) + (d.base_amount or 0)
    exponent = 10 ** currency_exponent(base)
    chart = charts.bar_chart(
        _("Revenue per day"),
        [_short(d) for d in per_day],
        [v / exponent for v in per_day.values()],
        "",
    )
    return console_page(
        request,
        "console/reports/revenue.html",
        staff,
        section="reports",
        period=period,
        report=report,
        base=base,
        chart=chart,
    )


@router.get("/creators", response_model=None)
def creators(
    request: Request,
    staff: RevenueReader,
    session: DbSession,
    asked: ReportQuery,
) -> Response:
    """Sales per creator (products without a creator are the platform's own)."""
    period = asked.period
    rows = reports.revenue_per_creator(session, period)
    if asked.as_csv:
        return asked.csv(
            "creators",
            ["creator_id", "creator_email", "currency", "orders", "gross", "refunded", "net"],
            [
                (
                    r.creator_id or "",
                    r.creator_email or "",
                    r.currency,
                    r.orders,
                    _major(r.gross, r.currency),
                    _major(r.refunded, r.currency),
                    _major(r.net, r.currency),
                )
                for r in rows
            ],
        )
    _ = i18n.gettext_for(request)
    chart = charts.hbar_chart(
        _("Revenue per creator"),
        [f"{r.creator_email or _('No creator')} ({r.currency})" for r in rows],
        [float(Money(r.net, r.currency).to_decimal_string()) for r in rows],
        "",
    )
    return console_page(
        request,
        "console/reports/creators.html",
        staff,
        section="reports",
        period=period,
        rows=rows,
        chart=chart,
    )
