"""Request and response bodies of orders."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from knowpay.kit.schemas import AmountMinor, CurrencyCode, unicode_text
from knowpay.orders.models import Order

DEFAULT_EXPIRES_IN_S = 1800
MIN_EXPIRES_IN_S = 60
MAX_EXPIRES_IN_S = 7 * 86400


def metadata_as_text(value: dict[str, str | int | float | bool]) -> dict[str, str]:
    """An order's metadata as text, each key 1-40 and each value at most 500 characters."""
    as_text = {
        key: str(item).lower() if isinstance(item, bool) else str(item)
        for key, item in value.items()
    }
    for key, item in as_text.items():
        if not 1 <= len(key) <= 40 or len(item) > 500:
            raise ValueError("metadata keys are 1-40 characters, values at most 500")
        if not unicode_text(key, item):
            raise ValueError("metadata keys and values are Unicode text")
    return as_text


OutTradeNo = Annotated[
    str | None, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.|*]+$")
]
"""The merchant's own order number (unique per app)."""
ExpiresIn = Annotated[
    int, Field(ge=MIN_EXPIRES_IN_S, le=MAX_EXPIRES_IN_S, strict=True, description="Seconds")
]
Metadata = Annotated[
    dict[str, str | int | float | bool],
    Field(max_length=20, description="Up to 20 keys; values are kept as strings"),
]


class OrderItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: str = Field(min_length=1, max_length=40)
    quantity: int = Field(default=1, ge=1, le=100, strict=True)


class OrderCreate(BaseModel):
    """An order for a buyer. The amount is computed from the catalog; never send one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "usr_01jd3k9w6m2c4x8t0v5b7n1q3r",
                    "currency": "CNY",
                    "items": [{"product_id": "prod_01jd3k9w6m2c4x8t0v5b7n1q3s", "quantity": 1}],
                    "out_trade_no": "P20261125000123",
                    "expires_in": 1800,
                    "metadata": {"channel": "ios"},
                }
            ]
        },
    )

    user_id: str = Field(min_length=1, max_length=40)
    items: list[OrderItemIn] = Field(min_length=1, max_length=20)
    currency: CurrencyCode
    out_trade_no: OutTradeNo = None
    expires_in: ExpiresIn = DEFAULT_EXPIRES_IN_S
    metadata: Metadata = Field(default_factory=dict)

    # Named only to be refused with a clear message on the field itself (not in the schema).
    amount: SkipJsonSchema[None] = Field(default=None, exclude=True)
    total_amount: SkipJsonSchema[None] = Field(default=None, exclude=True)

    @field_validator("amount", "total_amount", mode="before")
    @classmethod
    def _no_amount(cls, value: Any) -> None:
        raise ValueError(
            "the amount is computed from the catalog's published price; do not send one"
        )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str | int | float | bool]) -> dict[str, str]:
        return metadata_as_text(value)

    @field_validator("items")
    @classmethod
    def _distinct_products(cls, value: list[OrderItemIn]) -> list[OrderItemIn]:
        ids = [item.product_id for item in value]
        if len(set(ids)) != len(ids):
            raise ValueError("list each product once and use quantity")
        return value


class TopUpCreate(BaseModel):
    """Coins for a buyer's wallet: an order of `kind` `top_up` for the amount asked, paid
    through a gateway channel like any order; when paid, the buyer's balance grows by it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"user_id": "usr_01jd3k9w6m2c4x8t0v5b7n1q3r", "amount": 5000, "currency": "CNY"}
            ]
        },
    )

    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="The buyer whose wallet it fills (an app must name one; a buyer: themself)",
    )
    amount: AmountMinor
    currency: CurrencyCode
    out_trade_no: OutTradeNo = None
    expires_in: ExpiresIn = DEFAULT_EXPIRES_IN_S
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str | int | float | bool]) -> dict[str, str]:
        return metadata_as_text(value)


class OrderItemOut(BaseModel):
    product_id: str
    title: str
    kind: str
    period_days: int | None
    quantity: int
    unit_amount: int
    amount: int


class OrderOut(BaseModel):
    object: Literal["order"] = "order"
    id: str
    app_id: str
    user_id: str
    out_trade_no: str
    kind: Literal["purchase", "top_up"] = Field(
        description="`top_up`: coins for the buyer's wallet (no items)"
    )
    status: str
    amount: int
    currency: str
    amount_refunded: int
    subject: str
    items: list[OrderItemOut]
    metadata: dict[str, str]
    payment_id: str | None = Field(description="The payment that paid the order")
    expires_at: datetime
    paid_at: datetime | None
    closed_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            app_id=order.app_id,
            user_id=order.user_id,
            out_trade_no=order.out_trade_no,
            kind=order.kind,
            status=order.status,
            amount=order.amount_minor,
            currency=order.currency,
            amount_refunded=order.refunded_minor,
            subject=order.subject,
            items=[
                OrderItemOut(
                    product_id=i.product_id,
                    title=i.title,
                    kind=i.kind,
                    period_days=i.period_days,
                    quantity=i.quantity,
                    unit_amount=i.unit_amount_minor,
                    amount=i.amount_minor,
                )
                for i in order.items
            ],
            metadata=json.loads(order.metadata_json or "{}"),
            payment_id=order.paid_payment_id,
            expires_at=order.expires_at,
            paid_at=order.paid_at,
            closed_at=order.closed_at,
            created_at=order.created_at,
        )
