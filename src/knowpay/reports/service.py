"""Exchange rates (dated) and the revenue report in a base currency. Rates are used here
only: an order is always charged in its own currency at its catalog price."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.audit import service as audit
from knowpay.kit.ids import new_id
from knowpay.kit.money import currency_exponent
from knowpay.ledger import service as ledger
from knowpay.ledger.accounts import PLATFORM_REVENUE
from knowpay.reports.models import ExchangeRate
from knowpay.reports.schemas import CurrencyTotal, RateIn, RevenueDay, RevenueReport


def set_rates(
    session: Session, rates: list[RateIn], source: str, now: datetime
) -> list[ExchangeRate]:
    """Store rates; a rate for a (currency, base, date) already known replaces it."""
    stored: list[ExchangeRate] = []
    for rate in rates:
        row = session.scalar(
            select(ExchangeRate).where(
                ExchangeRate.currency == rate.currency,
                ExchangeRate.base_currency == rate.base_currency,
                ExchangeRate.rate_date == rate.date,
            )
        )
        if row is None:
            row = ExchangeRate(
                id=new_id("fx"),
                currency=rate.currency,
                base_currency=rate.base_currency,
                rate_date=rate.date,
            )
            session.add(row)
        before = {"rate": row.rate} if row.rate else None
        row.rate, row.source, row.created_at = str(rate.rate.normalize()), source, now
        stored.append(row)
        session.flush()
        audit.record(
            session,
            action="exchange_rate.set",
            object_type="exchange_rate",
            object_id=row.id,
            before=before,
            after={
                "currency": row.currency,
                "base": row.base_currency,
                "rate": row.rate,
                "date": row.rate_date.isoformat(),
                "source": source,
            },
            now=now,
        )
    return stored


def list_rates(
    session: Session, *, base_currency: str | None = None, currency: str | None = None
) -> list[ExchangeRate]:
    """Known rates, newest date first."""
    statement = select(ExchangeRate).order_by(
        ExchangeRate.rate_date.desc(), ExchangeRate.currency, ExchangeRate.base_currency
    )
    if base_currency:
        statement = statement.where(ExchangeRate.base_currency == base_currency)
    if currency:
        statement = statement.where(ExchangeRate.currency == currency)
    return list(session.scalars(statement.limit(1000)))


def rate_on(session: Session, currency: str, base_currency: str, day: date) -> Decimal | None:
    """The latest rate dated on or before `day` (1 for the base currency itself)."""
    if currency == base_currency:
        return Decimal(1)
    value = session.scalar(
        select(ExchangeRate.rate)
        .where(
            ExchangeRate.currency == currency,
            ExchangeRate.base_currency == base_currency,
            ExchangeRate.rate_date <= day,
        )
        .order_by(ExchangeRate.rate_date.desc())
        .limit(1)
    )
    return Decimal(value) if value is not None else None


def convert_minor(amount_minor: int, currency: str, rate: Decimal, base_currency: str) -> int:
    """An amount in minor units translated to the base currency's minor units (half-even)."""
    major = Decimal(amount_minor).scaleb(-currency_exponent(currency))
    base_minor = (major * rate).scaleb(currency_exponent(base_currency))
    return int(base_minor.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def revenue(
    session: Session, base_currency: str, start: date, end: date, timezone: str
) -> RevenueReport:
    """Net revenue per day of `timezone` and currency from the ledger (credits to platform
    revenue minus refund debits), each day also in the base currency at that day's rate."""
    days: list[RevenueDay] = []
    totals: dict[str, int] = defaultdict(int)
    base_total, missing = 0, []
    for total in ledger.daily_totals(session, PLATFORM_REVENUE, start, end, timezone):
        amount = -total.amount_minor  # revenue is credited: negative postings
        totals[total.currency] += amount
        rate = rate_on(session, total.currency, base_currency, total.day)
        base_amount = None
        if rate is None:
            missing.append(f"{total.currency}@{total.day.isoformat()}")
        else:
            base_amount = convert_minor(amount, total.currency, rate, base_currency)
            base_total += base_amount
        days.append(
            RevenueDay(
                day=total.day,
                currency=total.currency,
                amount=amount,
                rate=None if rate is None else str(rate),
                base_amount=base_amount,
            )
        )
    return RevenueReport(
        base_currency=base_currency,
        start=start,
        end=end,
        timezone=timezone,
        days=days,
        totals=[CurrencyTotal(currency=c, amount=a) for c, a in sorted(totals.items())],
        base_total=base_total,
        missing_rates=missing,
    )
