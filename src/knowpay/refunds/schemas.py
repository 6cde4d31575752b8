"""Request and response bodies of refunds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from knowpay.kit.schemas import AmountMinor
from knowpay.refunds.models import Refund, RefundTimelineEntry


class RefundReason(StrEnum):
    ACCIDENTAL_PURCHASE = "accidental_purchase"
    DUPLICATE_PURCHASE = "duplicate_purchase"
    NOT_AS_DESCRIBED = "not_as_described"
    QUALITY_ISSUE = "quality_issue"
    TECHNICAL_PROBLEM = "technical_problem"
    NO_LONGER_NEEDED = "no_longer_needed"
    OTHER = "other"


class RefundCreate(BaseModel):
    """Ask for money back. Without `amount`, everything still refundable is refunded."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"order_id": "ord_01m8a2wzmxxdwn1kewewckp24c", "reason": "accidental_purchase"},
                {
                    "order_id": "ord_01m8a2wzmxxdwn1kewewckp24c",
                    "amount": 3000,
                    "reason": "other",
                    "reason_text": "Only the first chapter was useful",
                },
            ]
        },
    )

    order_id: str = Field(min_length=1, max_length=40)
    amount: AmountMinor | None = None
    reason: str = Field(
        min_length=1,
        max_length=500,
        description="A listed reason; any other text is kept as `reason_text` under `other`",
    )
    reason_text: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _listed_reason(self) -> RefundCreate:
        if self.reason not in RefundReason.__members__.values():
            self.reason_text = self.reason_text or self.reason
            self.reason = RefundReason.OTHER.value
        return self


class RefundDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)


class RefundRejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Shown to the buyer")


class ManualResolution(BaseModel):
    """Finance settles a failed refund outside the gateway."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["wallet", "offline"]
    note: str | None = Field(default=None, max_length=500)


class TimelineOut(BaseModel):
    status: str
    step: str
    actor: str
    note: str | None
    at: datetime

    @classmethod
    def of(cls, entry: RefundTimelineEntry) -> TimelineOut:
        return cls(
            status=entry.status, step=entry.step, actor=entry.actor, note=entry.note, at=entry.at
        )


class RefundOut(BaseModel):
    object: Literal["refund"] = "refund"
    id: str
    order_id: str
    payment_id: str
    channel: str
    kind: str
    amount: int
    currency: str
    status: str
    reason: str
    reason_text: str | None
    failure_code: str | None
    failure_message: str | None
    rejection_reason: str | None
    resolution: str | None
    created_at: datetime
    succeeded_at: datetime | None
    timeline: list[TimelineOut]

    @classmethod
    def of(cls, refund: Refund, timeline: list[RefundTimelineEntry]) -> RefundOut:
        return cls(
            id=refund.id,
            order_id=refund.order_id,
            payment_id=refund.payment_id,
            channel=refund.channel,
            kind=refund.kind,
            amount=refund.amount_minor,
            currency=refund.currency,
            status=refund.status,
            reason=refund.reason,
            reason_text=refund.reason_text,
            failure_code=refund.failure_code,
            failure_message=refund.failure_message,
            rejection_reason=refund.rejection_reason,
            resolution=refund.resolution,
            created_at=refund.created_at,
            succeeded_at=refund.succeeded_at,
            timeline=[TimelineOut.of(e) for e in timeline],
        )
