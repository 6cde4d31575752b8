"""Request and response bodies of payments."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from knowpay.payments.models import Payment


class PaymentCreate(BaseModel):
    """Start a payment attempt for an order through one channel."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"channel": "alipay_qr"},
                {"channel": "alipay_page", "return_url": "https://www.example.com/orders/123"},
                {"channel": "test", "test_outcome": "succeeded"},
            ]
        },
    )

    channel: str = Field(min_length=1, max_length=32)
    return_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    client_ip: str | None = Field(default=None, max_length=64)
    openid: str | None = Field(
        default=None, max_length=128, description="WeChat JSAPI payer openid"
    )
    test_outcome: Literal["succeeded", "failed", "pending", "unavailable"] | None = Field(
        default=None, description="Test channel only: the outcome to simulate"
    )
    test_delay_ms: int | None = Field(default=None, ge=0, le=5000, description="Test channel only")

    def channel_options(self) -> dict[str, Any]:
        options = {
            "openid": self.openid,
            "test_outcome": self.test_outcome,
            "test_delay_ms": self.test_delay_ms,
        }
        return {key: value for key, value in options.items() if value is not None}


class PaymentOut(BaseModel):
    object: Literal["payment"] = "payment"
    id: str
    order_id: str
    channel: str
    status: str
    amount: int
    currency: str
    action: dict[str, str] | None
    gateway_trade_no: str | None
    is_duplicate: bool
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    succeeded_at: datetime | None

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            order_id=payment.order_id,
            channel=payment.channel,
            status=payment.status,
            amount=payment.amount_minor,
            currency=payment.currency,
            action=json.loads(payment.action_json) if payment.action_json else None,
            gateway_trade_no=payment.gateway_trade_no,
            is_duplicate=payment.is_duplicate,
            failure_code=payment.failure_code,
            failure_message=payment.failure_message,
            created_at=payment.created_at,
            succeeded_at=payment.succeeded_at,
        )
