"""Request and response bodies of exchange rates and reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from knowpay.kit.money import MoneyError, normalize_currency
from knowpay.kit.schemas import CURRENCY_PATTERN, PlainDecimal
from knowpay.reports.models import ExchangeRate


def parse_currency(value: str) -> str:
    """An ISO 4217 code, upper-cased; ValueError when unknown."""
    try:
        return normalize_currency(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc


class RateIn(BaseModel):
    """One unit of `currency` is worth `rate` units of `base_currency` on `date`; the two
    currencies differ (a currency is always worth 1 of itself)."""

    model_config = ConfigDict(extra="forbid")

    currency: str = Field(min_length=3, max_length=3, pattern=CURRENCY_PATTERN)
    base_currency: str = Field(min_length=3, max_length=3, pattern=CURRENCY_PATTERN)
    rate: PlainDecimal = Field(gt=0, max_digits=24, decimal_places=12)
    date: date

    _currencies = field_validator("currency", "base_currency")(parse_currency)

    @model_validator(mode="after")
    def _two_currencies(self) -> RateIn:
        # Reports use 1 for a currency in itself: a stored rate for it would never be read.
        if self.currency == self.base_currency:
            raise ValueError(f"currency and base_currency are both {self.currency}")
        return self


class RatesIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source": "treasury",
                    "rates": [
                        {
                            "currency": "USD",
                            "base_currency": "CNY",
                            "rate": "7.1234",
                            "date": "2026-11-25",
                        }
                    ],
                }
            ]
        },
    )

    rates: list[RateIn] = Field(min_length=1, max_length=1000)
    source: str = Field(default="admin_api", min_length=1, max_length=64)


class RateOut(BaseModel):
    object: Literal["exchange_rate"] = "exchange_rate"
    id: str
    currency: str
    base_currency: str
    rate: str
    date: date
    source: str
    created_at: datetime

    @classmethod
    def of(cls, rate: ExchangeRate) -> RateOut:
        return cls(
            id=rate.id,
            currency=rate.currency,
            base_currency=rate.base_currency,
            rate=rate.rate,
            date=rate.rate_date,
            source=rate.source,
            created_at=rate.created_at,
        )


class RevenueDay(BaseModel):
    day: date
    currency: str
    amount: int = Field(description="Net revenue in the currency's minor units")
    rate: str | None = Field(description="The rate used (the latest on or before the day)")
    base_amount: int | None = Field(description="In the base currency; null without a rate")


class CurrencyTotal(BaseModel):
    currency: str
    amount: int


class RevenueReport(BaseModel):
    """Net platform revenue (captures minus refunds) per day, with a base-currency view for
    comparing currencies. The rates never change what buyers paid; they only translate it."""

    object: Literal["revenue_report"] = "revenue_report"
    base_currency: str
    start: date
    end: date
    timezone: str = Field(description="The IANA time zone whose days these are (`limits.timezone`)")
    days: list[RevenueDay]
    totals: list[CurrencyTotal]
    base_total: int = Field(description="Sum of the days that have a rate, in the base currency")
    missing_rates: list[str] = Field(description="`CUR@YYYY-MM-DD` that had no rate")
