"""Request and response bodies of risk control, and each rule kind's params."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)

from knowpay.kit.schemas import MAX_AMOUNT_MINOR, CurrencyCode, Strict, WrittenPlainly
from knowpay.risk.models import RiskBlacklistEntry, RiskDecision, RiskRule

# 31 days: the longest window a rule may look back over.
MAX_WINDOW_S = 31 * 24 * 3600


class RuleKind(StrEnum):
    VELOCITY = "velocity"
    FAILED_STREAK = "failed_streak"
    BLACKLIST = "blacklist"
    AMOUNT_ANOMALY = "amount_anomaly"
    NEW_ACCOUNT = "new_account"


class RuleAction(StrEnum):
    """What a matching rule does to the attempt."""

    REVIEW = "review"
    DENY = "deny"


class BlacklistKind(StrEnum):
    BUYER = "buyer"
    """A user id (`usr_…`)."""
    IP = "ip"
    """A client IP address (stored in its canonical form)."""
    DEVICE = "device"
    """The device id the platform's app sends with the payment."""
    PAYER_ACCOUNT = "payer_account"
    """The paying account as the gateway reports it (Alipay buyer id, WeChat openid, PayPal
    payer id …), known only once a notification arrives."""


WindowS = Annotated[StrictInt, Field(ge=1, le=MAX_WINDOW_S, description="Seconds to look back")]


class VelocityParams(Strict):
    """More than `max_attempts` payment attempts within `window_s` by one buyer, IP or device:
    the next attempt matches."""

    subject: Literal["buyer", "ip", "device"]
    max_attempts: Annotated[StrictInt, Field(ge=1, le=100_000)]
    window_s: WindowS


class FailedStreakParams(Strict):
    """The buyer's last `max_failures` finished attempts within `window_s` all failed."""

    max_failures: Annotated[StrictInt, Field(ge=1, le=1_000)]
    window_s: WindowS


class BlacklistParams(Strict):
    """No params: the attempt's buyer, IP or device is on the blacklist."""


Multiplier = Annotated[
    Decimal,
    Field(gt=1, le=1000, decimal_places=4, description="How many times the buyer's average"),
    WrittenPlainly(),
    # A JSON number out, as it came in; exact for four decimal places at this size.
    PlainSerializer(float, return_type=float, when_used="json"),
]


class AmountAnomalyParams(Strict):
    """The amount exceeds `multiplier` × the buyer's average succeeded amount in the same
    currency, once they have at least `min_history` succeeded payments."""

    multiplier: Multiplier
    min_history: Annotated[StrictInt, Field(ge=1, le=10_000)]


class NewAccountParams(Strict):
    """An account younger than `max_account_age_s` pays more than `max_amount_minor` of
    `currency`."""

    max_account_age_s: Annotated[StrictInt, Field(ge=1, le=366 * 24 * 3600)]
    max_amount_minor: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_MINOR)]
    currency: CurrencyCode


RuleParams = (
    VelocityParams | FailedStreakParams | BlacklistParams | AmountAnomalyParams | NewAccountParams
)

PARAMS_BY_KIND: dict[RuleKind, type[Strict]] = {
    RuleKind.VELOCITY: VelocityParams,
    RuleKind.FAILED_STREAK: FailedStreakParams,
    RuleKind.BLACKLIST: BlacklistParams,
    RuleKind.AMOUNT_ANOMALY: AmountAnomalyParams,
    RuleKind.NEW_ACCOUNT: NewAccountParams,
}


def parse_params(kind: RuleKind, raw: dict[str, Any]) -> Any:
    """`raw` validated as `kind`'s params (pydantic's ValidationError when it is not)."""
    return PARAMS_BY_KIND[kind].model_validate(raw)


def dump_params(params: BaseModel) -> dict[str, Any]:
    return params.model_dump(mode="json")


class _RuleCreateBase(Strict):
    action: RuleAction
    enabled: StrictBool = True
    priority: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 100
    description: str | None = Field(default=None, max_length=500)


class VelocityRuleCreate(_RuleCreateBase):
    kind: Literal[RuleKind.VELOCITY]
    params: VelocityParams


class FailedStreakRuleCreate(_RuleCreateBase):
    kind: Literal[RuleKind.FAILED_STREAK]
    params: FailedStreakParams


class BlacklistRuleCreate(_RuleCreateBase):
    kind: Literal[RuleKind.BLACKLIST]
    params: BlacklistParams = Field(default_factory=BlacklistParams)


class AmountAnomalyRuleCreate(_RuleCreateBase):
    kind: Literal[RuleKind.AMOUNT_ANOMALY]
    params: AmountAnomalyParams


class NewAccountRuleCreate(_RuleCreateBase):
    kind: Literal[RuleKind.NEW_ACCOUNT]
    params: NewAccountParams


AnyRuleCreate = (
    VelocityRuleCreate
    | FailedStreakRuleCreate
    | BlacklistRuleCreate
    | AmountAnomalyRuleCreate
    | NewAccountRuleCreate
)

RuleCreate = Annotated[AnyRuleCreate, Field(discriminator="kind")]
"""A new rule: `kind` decides which `params` it takes."""

rule_create_adapter: TypeAdapter[RuleCreate] = TypeAdapter(RuleCreate)


class RuleUpdate(Strict):
    """Change a rule; omitted fields stay. `params` is validated against the rule's kind and
    replaces the old params whole."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"enabled": False}, {"params": {"max_attempts": 3}}]},
    )

    enabled: StrictBool | None = None
    action: RuleAction | None = None
    params: dict[str, Any] | None = None
    priority: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = None
    description: str | None = Field(default=None, max_length=500)


class RuleOut(BaseModel):
    object: Literal["risk_rule"] = "risk_rule"
    id: str
    kind: RuleKind
    params: dict[str, Any]
    action: RuleAction
    enabled: bool
    priority: int
    description: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: RiskRule) -> RuleOut:
        return cls(
            id=rule.id,
            kind=RuleKind(rule.kind),
            params=rule.params,
            action=RuleAction(rule.action),
            enabled=rule.enabled,
            priority=rule.priority,
            description=rule.description,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
        )


def canonical_ip(value: str) -> str | None:
    """An IP address in one canonical form (an IPv4-mapped IPv6 address as IPv4); None when
    `value` is not an IP address."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class BlacklistCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "ip", "value": "203.0.113.7", "reason": "card testing"}]
        },
    )

    kind: BlacklistKind
    value: str = Field(min_length=1, max_length=255)
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _canonical(self) -> BlacklistCreate:
        self.value = self.value.strip()
        if not self.value:
            raise ValueError("value must not be blank")
        if self.kind is BlacklistKind.IP:
            canonical = canonical_ip(self.value)
            if canonical is None:
                raise ValueError("value must be an IP address for kind ip")
            self.value = canonical
        return self


class BlacklistEntryOut(BaseModel):
    object: Literal["risk_blacklist_entry"] = "risk_blacklist_entry"
    id: str
    kind: BlacklistKind
    value: str
    reason: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, entry: RiskBlacklistEntry) -> BlacklistEntryOut:
        return cls(
            id=entry.id,
            kind=BlacklistKind(entry.kind),
            value=entry.value,
            reason=entry.reason,
            created_by=entry.created_by,
            created_at=entry.created_at,
        )


class ReasonOut(BaseModel):
    rule_id: str
    kind: str
    action: str
    detail: str


class RiskDecisionOut(BaseModel):
    object: Literal["risk_decision"] = "risk_decision"
    id: str
    payment_id: str
    order_id: str
    user_id: str
    app_id: str
    amount: int
    currency: str
    channel: str
    client_ip: str | None
    device_id: str | None
    decision: Literal["allow", "review", "deny"]
    reasons: list[ReasonOut]
    rule_ids: list[str]
    review_status: Literal["open", "released", "rejected", "closed"] | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None
    created_at: datetime

    @classmethod
    def of(cls, decision: RiskDecision) -> RiskDecisionOut:
        return cls.model_validate(
            {
                "id": decision.id,
                "payment_id": decision.payment_id,
                "order_id": decision.order_id,
                "user_id": decision.user_id,
                "app_id": decision.app_id,
                "amount": decision.amount_minor,
                "currency": decision.currency,
                "channel": decision.channel,
                "client_ip": decision.client_ip,
                "device_id": decision.device_id,
                "decision": decision.decision,
                "reasons": decision.reasons,
                "rule_ids": decision.rule_ids,
                "review_status": decision.review_status,
                "reviewed_by": decision.reviewed_by,
                "reviewed_at": decision.reviewed_at,
                "review_note": decision.review_note,
                "created_at": decision.created_at,
            }
        )


class ReviewDecisionIn(Strict):
    note: str | None = Field(default=None, max_length=500, description="Kept with the review")
