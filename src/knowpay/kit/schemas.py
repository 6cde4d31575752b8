"""Pydantic building blocks shared by every domain's request and response bodies."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictInt,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from knowpay.kit.money import Money, MoneyError, normalize_currency

EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(9999, 12, 30)
"""knowpay holds nothing outside these days. The API refuses a date beyond them and the
console keeps a typed one within them: a period reckoned back from date.min, or a time zone's
midnight near date.max, overflows Python's dates."""

# 10^15 minor units: far above any real price, far below where a sum could overflow BIGINT.
MAX_AMOUNT_MINOR = 10**15


def _currency(value: str) -> str:
    try:
        return normalize_currency(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc


CURRENCY_PATTERN = "^[A-Za-z]{3}$"
"""Three letters: what an ISO 4217 code can be (which codes are known is checked on top)."""

CurrencyCode = Annotated[
    str,
    Field(
        min_length=3,
        max_length=3,
        pattern=CURRENCY_PATTERN,
        examples=["CNY"],
        description="ISO 4217 code, upper case",
    ),
    AfterValidator(_currency),
]
AmountMinor = Annotated[
    StrictInt,
    Field(
        gt=0,
        le=MAX_AMOUNT_MINOR,
        examples=[9900],
        description="Integer count of the currency's minor unit (fen, cent; JPY has none)",
    ),
]


_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _decimal_written_plainly(value: object) -> object:
    """A decimal sent as a string is written as a JSON number would be: Python's `Decimal`
    also takes `1_000`, fullwidth or Arabic-Indic digits and surrounding blanks, which a
    staff member's typo should not turn into a rate or a rule."""
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise ValueError("Write the number with ASCII digits, e.g. 6.8 or 1e-3")
    return value


class WrittenPlainly:
    """Marks a `Decimal` as read from a JSON number or a string in the same notation (ASCII
    digits only), and says so in the request schema (the string branch's `pattern`).

    Put it after the Decimal's `Field` bounds: Pydantic then checks them on the Decimal itself
    and writes them into the schema's number branch as `exclusiveMinimum`, `maximum`… (after a
    validator they leak out as `gt`, `le`, which no JSON Schema reader knows)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            _decimal_written_plainly, handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        for branch in json_schema.get("anyOf", []):
            if branch.get("type") == "string":
                branch["pattern"] = f"^{_DECIMAL_TEXT.pattern}$"
        return json_schema


PlainDecimal = Annotated[Decimal, WrittenPlainly()]
"""A decimal from a JSON number or a string in the same notation (ASCII digits only)."""


def _day_in_range(day: date) -> date:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"Date should be within {EARLIEST_DAY} … {LATEST_DAY}")
    return day


Day = Annotated[date, AfterValidator(_day_in_range)]
"""A date (YYYY-MM-DD) within [EARLIEST_DAY, LATEST_DAY]; another is a validation error."""

EARLIEST_TIME = datetime.combine(EARLIEST_DAY, time.min, tzinfo=UTC)
LATEST_TIME = datetime.combine(LATEST_DAY + timedelta(days=1), time.min, tzinfo=UTC)
TIME_RANGE = f"{EARLIEST_TIME:%Y-%m-%dT%H:%M:%SZ} … {LATEST_TIME:%Y-%m-%dT%H:%M:%SZ}"


def _utc_in_range(moment: datetime) -> datetime:
    """The time in UTC (one without an offset is read as UTC). It is compared before it is
    converted: 9999-12-31T23:59:59-01:00 or 0001-01-01T00:30:00+01:00 has no UTC datetime."""
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if not EARLIEST_TIME <= moment <= LATEST_TIME:
        raise ValueError(f"Time should be within {TIME_RANGE}")
    return moment.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc_in_range)]
"""An RFC 3339 time within [EARLIEST_TIME, LATEST_TIME], as UTC; another is a validation
error."""


def unicode_text(*texts: str) -> bool:
    """Whether every text is Unicode a database can hold: JSON can escape a lone surrogate
    (`"\\ud800"`), which pydantic passes in a dict's keys and free-form values."""
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Strict(BaseModel):
    """Base for request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class MoneyIn(Strict):
    amount: AmountMinor
    currency: CurrencyCode

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)


class MoneyOut(BaseModel):
    amount: int
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        return cls(amount=money.amount_minor, currency=money.currency)
