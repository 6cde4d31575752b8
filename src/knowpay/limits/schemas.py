"""Request and response bodies of spending limits."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from knowpay.channels.types import CHANNEL_GATEWAYS
from knowpay.kit.money import MoneyError, normalize_currency
from knowpay.kit.schemas import CURRENCY_PATTERN
from knowpay.limits.models import LimitUsage, SpendingLimit

Scope = Literal["buyer", "app", "channel"]
Period = Literal["transaction", "day", "month"]


class LimitCreate(BaseModel):
    """A spending limit, e.g. unverified buyers at most ¥500 a day:
    `{"scope": "buyer", "period": "day", "buyer_level": "unverified", "amount": 50000,
    "currency": "CNY"}`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scope": "buyer",
                    "period": "day",
                    "buyer_level": "unverified",
                    "amount": 50000,
                    "currency": "CNY",
                },
                {
                    "scope": "channel",
                    "period": "transaction",
                    "channel": "wechat_native",
                    "amount": 2000000,
                    "currency": "CNY",
                },
            ]
        },
    )

    scope: Scope
    period: Period
    amount: int = Field(gt=0, le=10**15, strict=True, description="The maximum, in minor units")
    currency: str = Field(min_length=3, max_length=3, pattern=CURRENCY_PATTERN)
    buyer_level: str | None = Field(default=None, min_length=1, max_length=16)
    app_id: str | None = Field(default=None, min_length=1, max_length=40)
    channel: str | None = Field(default=None, min_length=1, max_length=32)
    description: str | None = Field(default=None, max_length=200)
    enabled: StrictBool = True

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str | None) -> str | None:
        if value is not None and value not in CHANNEL_GATEWAYS:
            raise ValueError(f"no channel named {value!r}; known: {', '.join(CHANNEL_GATEWAYS)}")
        return value

    @model_validator(mode="after")
    def _selectors_fit_the_scope(self) -> LimitCreate:
        if self.buyer_level is not None and self.scope != "buyer":
            raise ValueError("buyer_level applies to buyer limits only")
        if self.channel is not None and self.scope != "channel":
            raise ValueError("channel applies to channel limits only")
        return self


class LimitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int | None = Field(default=None, gt=0, le=10**15, strict=True)
    description: str | None = Field(
        default=None, max_length=200, description="The new description; an empty one clears it"
    )
    enabled: StrictBool | None = None


class LimitOut(BaseModel):
    object: Literal["limit"] = "limit"
    id: str
    scope: str
    period: str
    amount: int
    currency: str
    buyer_level: str | None
    app_id: str | None
    channel: str | None
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, limit: SpendingLimit) -> LimitOut:
        return cls(
            id=limit.id,
            scope=limit.scope,
            period=limit.period,
            amount=limit.max_amount_minor,
            currency=limit.currency,
            buyer_level=limit.buyer_level,
            app_id=limit.app_id,
            channel=limit.channel,
            description=limit.description,
            enabled=limit.enabled,
            created_at=limit.created_at,
            updated_at=limit.updated_at,
        )


class UsageOut(BaseModel):
    object: Literal["limit_usage"] = "limit_usage"
    id: str = Field(description="The cursor for `starting_after`")
    limit_id: str
    subject: str
    period_key: str
    used: int
    updated_at: datetime

    @classmethod
    def of(cls, usage: LimitUsage) -> UsageOut:
        return cls(
            id=usage.id,
            limit_id=usage.limit_id,
            subject=usage.subject,
            period_key=usage.period_key,
            used=usage.used_minor,
            updated_at=usage.updated_at,
        )


class LevelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: str = Field(min_length=1, max_length=16, pattern=r"^[a-z][a-z0-9_]*$")
