"""Request and response bodies of subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from knowpay.kit.schemas import CurrencyCode
from knowpay.subscriptions.models import Subscription

Status = Literal["active", "past_due", "canceled"]


class SubscriptionCreate(BaseModel):
    """Subscribe a buyer to a membership, renewed from their wallet at each period's end.

    The payment password authorises the renewals. Holding the membership already, the
    buyer pays nothing now and the first renewal falls at its end; otherwise the first
    period is paid from the wallet at once (402 `insufficient_balance` changes nothing)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "usr_01jd3k9w6m2c4x8t0v5b7n1q3r",
                    "product_id": "prod_01jd3k9w6m2c4x8t0v5b7n1q3s",
                    "currency": "CNY",
                    "payment_password": "135790",
                }
            ]
        },
    )

    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="The buyer (an app names one of its buyers; a buyer subscribes themself)",
    )
    product_id: str = Field(min_length=1, max_length=40)
    currency: CurrencyCode
    payment_password: str = Field(
        pattern=r"^[0-9]{6}$",
        description="The buyer's 6-digit payment password: their consent to the renewals",
        json_schema_extra={"writeOnly": True},
    )

    def __repr_args__(self) -> Any:  # the password stays out of reprs and tracebacks
        return [(k, "******" if k == "payment_password" else v) for k, v in super().__repr_args__()]


class SubscriptionCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: bool = Field(
        default=True,
        description="true: no more renewals, the subscription ends with the period paid for; "
        "false: it ends now (the period paid for stays the buyer's either way)",
    )


class SubscriptionOut(BaseModel):
    object: Literal["subscription"] = "subscription"
    id: str
    app_id: str
    user_id: str
    product_id: str
    amount: int = Field(
        description="The most a renewal charges (the price the buyer agreed to): a renewal at "
        "a higher price is not charged, and the subscription is canceled (`price_increased`)"
    )
    currency: str
    period_days: int
    status: Status = Field(
        description="active: renews; past_due: a renewal failed and is retried (dunning); "
        "canceled: ended"
    )
    cancel_at_period_end: bool
    current_period_end: datetime = Field(description="When the access paid for so far ends")
    next_attempt_at: datetime | None = Field(
        description="When the worker next acts: the renewal's charge, a dunning retry, or the "
        "end of a subscription canceled at its period's end"
    )
    renewals: int = Field(description="Periods renewed so far")
    failed_attempts: int = Field(description="Failed tries of the renewal now due")
    latest_order_id: str | None = Field(
        description="The latest renewal's order: while past_due, the buyer may pay it through "
        "any channel at the cashier, which renews the subscription"
    )
    last_failure_code: str | None
    cancel_reason: (
        Literal[
            "requested",
            "payment_failed",
            "price_increased",
            "period_changed",
            "product_unavailable",
        ]
        | None
    )
    created_at: datetime
    canceled_at: datetime | None

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionOut:
        return cls(
            id=subscription.id,
            app_id=subscription.app_id,
            user_id=subscription.user_id,
            product_id=subscription.product_id,
            amount=subscription.amount_minor,
            currency=subscription.currency,
            period_days=subscription.period_days,
            status=subscription.status,
            cancel_at_period_end=subscription.cancel_at_period_end,
            current_period_end=subscription.current_period_end,
            next_attempt_at=subscription.next_attempt_at,
            renewals=subscription.renewals,
            failed_attempts=subscription.failed_attempts,
            latest_order_id=subscription.latest_order_id,
            last_failure_code=subscription.last_failure_code,
            cancel_reason=subscription.cancel_reason,
            created_at=subscription.created_at,
            canceled_at=subscription.canceled_at,
        )
