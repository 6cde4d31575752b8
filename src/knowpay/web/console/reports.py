"""The console's reports: payment success rate, refund rate, channel mix, revenue per day
(the ledger's, from reports.service) and revenue per creator. Each report is a list of rows
that the page charts and `?format=csv` exports."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.accounts.models import User
from knowpay.catalog.models import Product
from knowpay.kit.clock import day_of, day_start
from knowpay.kit.money import Money
from knowpay.kit.schemas import EARLIEST_DAY
from knowpay.orders.models import Order, OrderItem
from knowpay.payments.models import Payment
from knowpay.refunds.models import Refund
from knowpay.reports import service as reports
from knowpay.reports.schemas import RevenueReport

MAX_DAYS = 366
PAID_STATUSES = ("paid", "partially_refunded", "refunded")


@dataclass(frozen=True, slots=True)
class Period:
    """Days in [start, end) of `timezone` (the console's, see common.display_timezone)."""

    start: date
    end: date
    timezone: str = "UTC"

    @classmethod
    def of(cls, start: date | None, end: date | None, today: date, timezone: str) -> Period:
        """The asked period, by default the last 30 days up to today; at most MAX_DAYS, never
        before EARLIEST_DAY. An end on or before the start shows the start day alone: never a
        day outside what was typed (it showed the day before the end)."""
        end = end or today + timedelta(days=1)
        start = max(start or end - timedelta(days=30), EARLIEST_DAY)
        if start >= end:
            end = start + timedelta(days=1)
        if (end - start).days > MAX_DAYS:
            start = end - timedelta(days=MAX_DAYS)
        return cls(start, end, timezone)

    @property
    def lower(self) -> datetime:
        return day_start(self.start, self.timezone)

    @property
    def upper(self) -> datetime:
        return day_start(self.end, self.timezone)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days)]

    def day_of(self, moment: datetime | None) -> date:
        """The day, in the period's time zone, of a time the query's filter made sure is set."""
        assert moment is not None
        return day_of(moment, self.timezone)


def percent(part: int, whole: int) -> float | None:
    """part/whole in percent with one decimal; None when there is no whole."""
    return round(100.0 * part / whole, 1) if whole else None


# Payment success rate -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuccessDay:
    day: date
    attempts: int
    succeeded: int
    failed: int
    pending: int

    @property
    def rate(self) -> float | None:
        """Succeeded among the attempts that reached an end (pending ones are left out)."""
        return percent(self.succeeded, self.attempts - self.pending)


def success_rate(session: Session, period: Period) -> list[SuccessDay]:
    """Payment attempts created per day and how they ended."""
    counts: dict[date, dict[str, int]] = {d: defaultdict(int) for d in period.days()}
    rows = session.execute(
        select(Payment.created_at, Payment.status).where(
            Payment.created_at >= period.lower, Payment.created_at < period.upper
        )
    ).all()
    for created_at, status in rows:
        counts.setdefault(period.day_of(created_at), defaultdict(int))[str(status)] += 1
    return [
        SuccessDay(
            day=day,
            attempts=sum(c.values()),
            succeeded=c["succeeded"],
            failed=c["failed"] + c["closed"],
            pending=c["pending"],
        )
        for day, c in sorted(counts.items())
    ]


# Refund rate --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundDay:
    day: date
    currency: str
    payments: int
    captured: int
    refunds: int
    refunded: int

    @property
    def rate(self) -> float | None:
        """Refunded money as a share of the money captured that day."""
        return percent(self.refunded, self.captured)


def refund_rate(session: Session, period: Period) -> list[RefundDay]:
    """Per day and currency: captures (duplicates left out) and buyer refunds that succeeded."""
    captured: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for succeeded_at, currency, amount in session.execute(
        select(Payment.succeeded_at, Payment.currency, Payment.amount_minor).where(
            Payment.status == "succeeded",
            Payment.is_duplicate.is_(False),
            Payment.succeeded_at >= period.lower,
            Payment.succeeded_at < period.upper,
        )
    ).all():
        cell = captured[(period.day_of(succeeded_at), str(currency))]
        cell[0] += 1
        cell[1] += int(amount)
    for succeeded_at, currency, amount in session.execute(
        select(Refund.succeeded_at, Refund.currency, Refund.amount_minor).where(
            Refund.status == "succeeded",
            Refund.kind != "duplicate",
            Refund.succeeded_at >= period.lower,
            Refund.succeeded_at < period.upper,
        )
    ).all():
        cell = captured[(period.day_of(succeeded_at), str(currency))]
        cell[2] += 1
        cell[3] += int(amount)
    return [
        RefundDay(day, currency, c[0], c[1], c[2], c[3])
        for (day, currency), c in sorted(captured.items())
    ]


# Channel mix --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelShare:
    channel: str
    currency: str
    payments: int
    amount: int
    share: float | None
    """This channel's share of the currency's captured amount, in percent."""


def channel_mix(session: Session, period: Period) -> list[ChannelShare]:
    """Captured payments per channel and currency, largest first."""
    rows = session.execute(
        select(Payment.channel, Payment.currency, Payment.amount_minor).where(
            Payment.status == "succeeded",
            Payment.succeeded_at >= period.lower,
            Payment.succeeded_at < period.upper,
        )
    ).all()
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    totals: dict[str, int] = defaultdict(int)
    for channel, currency, amount in rows:
        cells[(str(channel), str(currency))][0] += 1
        cells[(str(channel), str(currency))][1] += int(amount)
        totals[str(currency)] += int(amount)
    shares = [
        ChannelShare(ch, cur, c[0], c[1], percent(c[1], totals[cur]))
        for (ch, cur), c in cells.items()
    ]
    return sorted(shares, key=lambda s: (s.currency, -s.amount, s.channel))


# Revenue ------------------------------------------------------------------------------------


def revenue_per_day(session: Session, period: Period, base_currency: str) -> RevenueReport:
    """The ledger's net revenue per day of the period's time zone (reports.service.revenue,
    as GET /v1/admin/reports/revenue counts it)."""
    return reports.revenue(session, base_currency, period.start, period.end, period.timezone)


@dataclass(frozen=True, slots=True)
class CreatorRevenue:
    creator_id: str | None
    """None: products without a creator (the platform's own)."""
    creator_email: str | None
    currency: str
    orders: int
    gross: int
    refunded: int

    @property
    def net(self) -> int:
        return self.gross - self.refunded


def revenue_per_creator(session: Session, period: Period) -> list[CreatorRevenue]:
    """Orders paid in the period, their lines grouped by the product's creator: gross sales and
    the refunds so far, shared among an order's lines in proportion to their amounts."""
    rows = session.execute(
        select(
            Order.id,
            Order.currency,
            Order.refunded_minor,
            OrderItem.amount_minor,
            Product.creator_id,
        )
        .join(OrderItem, OrderItem.order_id == Order.id)
        .join(Product, Product.id == OrderItem.product_id)
        .where(
            Order.status.in_(PAID_STATUSES),
            Order.paid_at >= period.lower,
            Order.paid_at < period.upper,
        )
        # Lines in one order always: a tie in the refund's sharing goes the same way each time.
        .order_by(Order.id, OrderItem.line_no)
    ).all()
    lines_of: dict[str, list[tuple[str | None, str, int]]] = defaultdict(list)
    refunded_of: dict[str, int] = {}
    for order_id, currency, refunded, line, creator in rows:
        key = str(order_id)
        lines_of[key].append((None if creator is None else str(creator), str(currency), int(line)))
        refunded_of[key] = int(refunded)
    cells: dict[tuple[str | None, str], list[int]] = defaultdict(lambda: [0, 0])
    orders: dict[tuple[str | None, str], set[str]] = defaultdict(set)
    for order_id, lines in lines_of.items():
        shares = _refund_shares(refunded_of[order_id], lines[0][1], [a for _, _, a in lines])
        for (creator, currency, amount), share in zip(lines, shares, strict=True):
            cells[(creator, currency)][0] += amount
            cells[(creator, currency)][1] += share
            orders[(creator, currency)].add(order_id)
    creator_ids = {c for c, _ in cells if c is not None}
    emails: dict[str, str] = {}
    if creator_ids:
        emails = {
            str(i): str(e)
            for i, e in session.execute(
                select(User.id, User.email).where(User.id.in_(creator_ids))
            ).all()
        }
    result = [
        CreatorRevenue(
            creator,
            emails.get(creator) if creator else None,
            cur,
            len(orders[(creator, cur)]),
            c[0],
            c[1],
        )
        for (creator, cur), c in cells.items()
    ]
    return sorted(result, key=lambda r: (r.currency, -r.net, r.creator_id or ""))


def _refund_shares(refunded: int, currency: str, lines: list[int]) -> list[int]:
    """An order's refunded amount shared among its lines by their amounts, by largest
    remainder (no minor unit lost or made up); nothing to share on an order of free lines."""
    if not any(lines):
        return [0 for _ in lines]
    return [share.amount_minor for share in Money(refunded, currency).allocate(lines)]


# CSV ----------------------------------------------------------------------------------------


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a text cell as a formula (OWASP, CSV injection)."""


def csv_cell(cell: object) -> object:
    """A cell as written: text that a spreadsheet would run as a formula (an email such as
    `=HYPERLINK(…)`) gets a leading `'`, so it shows as text. Numbers (int, float, Decimal)
    are decided by their type, not their text, so `-1.00` stays a number."""
    if cell is None:
        return ""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM (so Excel reads Chinese correctly), CRLF line ends, no live formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_cell(cell) for cell in header])
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
