"""Request and response bodies of settlements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowpay.kit.schemas import EARLIEST_DAY, LATEST_DAY
from knowpay.settlements.models import Settlement


class SettlementLine(BaseModel):
    kind: Literal["creator_share", "creator_share_reversed", "creator_payout"] = Field(
        description="A share of a sale, a refund taking one back, or a payout"
    )
    amount: int = Field(description="Owed to the creator positive, taken back or paid negative")
    order_id: str | None
    entry_id: str
    created_at: datetime


class SettlementOut(BaseModel):
    object: Literal["settlement"] = "settlement"
    id: str
    creator_id: str
    currency: str
    period_start: date
    period_end: date = Field(description="The first day after the period")
    earned: int = Field(description="The creator's share of the period's sales")
    reversed: int = Field(description="What the period's refunds took back of shares")
    amount: int = Field(
        description="Owed at the period's end, earlier months and payouts included (zero or "
        "negative: nothing to pay)"
    )
    status: Literal["open", "paid", "superseded", "nothing_due"] = Field(
        description="open: to be paid; superseded: a newer statement states its amount too"
    )
    created_at: datetime
    paid_at: datetime | None
    payout_reference: str | None
    lines: list[SettlementLine] | None = Field(
        default=None, description="The period's shares, reversals and payouts (on one read)"
    )

    @classmethod
    def of(cls, settlement: Settlement, lines: list[SettlementLine] | None = None) -> SettlementOut:
        return cls(
            id=settlement.id,
            creator_id=settlement.creator_id,
            currency=settlement.currency,
            period_start=settlement.period_start,
            period_end=settlement.period_end,
            earned=settlement.earned_minor,
            reversed=settlement.reversed_minor,
            amount=settlement.amount_minor,
            status=settlement.status,
            created_at=settlement.created_at,
            paid_at=settlement.paid_at,
            payout_reference=settlement.payout_reference,
            lines=lines,
        )


class SettlementRun(BaseModel):
    """Settle a month that has ended (the worker does it on each month's first days)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"month": "2026-10"}]}
    )

    month: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")

    @field_validator("month")
    @classmethod
    def _a_month_knowpay_can_hold(cls, value: str) -> str:
        year, month = (int(part) for part in value.split("-"))
        if not (EARLIEST_DAY.year <= year and (year, month) < (LATEST_DAY.year, 12)):
            raise ValueError(f"a month from {EARLIEST_DAY:%Y-%m} to {LATEST_DAY.year}-11")
        return value

    def first_day(self) -> date:
        year, month = self.month.split("-")
        return date(int(year), int(month), 1)


class SettlementPayout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str | None = Field(
        default=None, max_length=200, description="The bank transfer's reference, for the books"
    )


class CreatorBalance(BaseModel):
    object: Literal["creator_balance"] = "creator_balance"
    creator_id: str
    owed: list[dict[str, int | str]] = Field(
        description="What the platform owes the creator now, per currency: "
        "[{amount, currency}] (negative: refunds after a payout left the creator owing)"
    )
