"""Request and response bodies of payments."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from knowpay.channels.health import ChannelHealthView
from knowpay.channels.types import Device
from knowpay.orders.models import Order
from knowpay.payments.models import Payment
from knowpay.wallet.service import WALLET_CHANNEL

if TYPE_CHECKING:
    from knowpay.payments.routing import ChannelChoice, Payer


class PaymentCreate(BaseModel):
    """Start a payment attempt for an order through one channel."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"channel": "alipay_qr"},
                {"device": "desktop"},
                {"channel": "alipay_page", "return_url": "https://www.example.com/orders/123"},
                {"channel": "test", "test_outcome": "succeeded"},
            ]
        },
    )

    channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="The channel the payer chose; omit it to let knowpay route to the "
        "preferred channel that can pay the order now (failing over when a gateway is down)",
    )
    device: Device | None = Field(
        default=None,
        description="Where the payer is (routing filter); default: from the User-Agent",
    )
    country: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="The payer's ISO 3166 country"
    )
    device_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="A stable id of the payer's device (risk control counts attempts by it)",
    )
    return_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Where the payer's browser goes after the gateway (through "
        "`/return/{payment_id}`); set by a buyer, it must be on knowpay's own, a CORS or a "
        "KNOWPAY_RETURN_URL_ORIGINS origin (422 return_url_not_allowed)",
    )
    client_ip: str | None = Field(
        default=None,
        max_length=64,
        description="The payer's IP address as the app saw it (WeChat H5 requires it; risk "
        "rules read it); of an X-Forwarded-For list, the first. Ignored when a buyer calls "
        "with their own token: the address they call from is used (behind a proxy, list it "
        "in KNOWPAY_TRUSTED_PROXIES)",
    )
    openid: str | None = Field(
        default=None,
        max_length=128,
        description="WeChat JSAPI payer openid: wechat_jsapi cannot do without it (named "
        "without it: 422 payer_details_missing; routing passes it by)",
    )
    payment_password: str | None = Field(
        default=None,
        pattern=r"^[0-9]{6}$",
        description="The buyer's 6-digit payment password: required with channel `wallet` "
        "(paying from the knowledge-coin balance), refused with any other channel",
        json_schema_extra={"writeOnly": True},
        validate_default=True,
    )
    test_outcome: Literal["succeeded", "failed", "pending", "unavailable"] | None = Field(
        default=None, description="Test channel only: the outcome to simulate"
    )
    test_delay_ms: int | None = Field(
        default=None, ge=0, le=5000, strict=True, description="Test channel only"
    )

    @field_validator("client_ip")
    @classmethod
    def _an_ip_address(cls, value: str | None) -> str | None:
        """An address; from an X-Forwarded-For chain passed on as it came ("1.2.3.4, 10.0.0.1"),
        its first hop, the payer's."""
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.split(",")[0].strip()))
        except ValueError:
            raise ValueError("client_ip is an IPv4 or IPv6 address") from None

    @field_validator("payment_password")
    @classmethod
    def _password_only_for_the_wallet(cls, value: str | None, info: ValidationInfo) -> str | None:
        paying_from_wallet = info.data.get("channel") == WALLET_CHANNEL
        if paying_from_wallet and value is None:
            raise PydanticCustomError(
                "missing", "the wallet channel needs the buyer's payment_password"
            )
        if value is not None and not paying_from_wallet:
            raise PydanticCustomError(
                "not_allowed", "payment_password is only for the wallet channel"
            )
        return value

    def __repr_args__(self) -> Any:  # the password stays out of reprs and tracebacks
        return [
            (k, "******" if k == "payment_password" and v else v)
            for k, v in super().__repr_args__()
        ]

    def channel_options(self) -> dict[str, Any]:
        options = {
            "device": self.device,
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
    held_for_review: bool = Field(
        description="Risk control sent the attempt to staff: `action` comes when released"
    )
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    succeeded_at: datetime | None = Field(description="When knowpay recorded the capture")
    gateway_paid_at: datetime | None = Field(
        description="When the gateway says the payer paid, by its own clock (null where it "
        "does not say): a late notification or an active query records the capture later"
    )

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
            held_for_review=payment.held_for_review,
            failure_code=payment.failure_code,
            failure_message=payment.failure_message,
            created_at=payment.created_at,
            succeeded_at=payment.succeeded_at,
            gateway_paid_at=payment.gateway_paid_at,
        )


class ChannelHealthOut(BaseModel):
    """A channel's recent gateway calls and its gateway's circuit breaker."""

    breaker_state: Literal["closed", "open", "half_open"]
    available: bool
    calls: int
    success_rate: float | None
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    opened_at: datetime | None
    retry_after_s: int

    @classmethod
    def of(cls, view: ChannelHealthView) -> ChannelHealthOut:
        return cls(
            breaker_state=view.breaker_state,
            available=view.available,
            calls=view.calls,
            success_rate=view.success_rate,
            error_rate=view.error_rate,
            latency_p50_ms=view.latency_p50_ms,
            latency_p95_ms=view.latency_p95_ms,
            opened_at=view.opened_at,
            retry_after_s=view.retry_after_s,
        )


class ChannelOption(BaseModel):
    """A channel that can pay the order now."""

    object: Literal["channel"] = "channel"
    channel: str
    gateway: str
    preferred: bool = Field(description="The one knowpay routes to when the payer names none")
    devices: list[str]
    health: ChannelHealthOut


class ChannelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ChannelOption]
    has_more: bool = False
    order_id: str
    amount: int
    currency: str
    device: str | None = Field(description="The payer's device the list was filtered for")

    @classmethod
    def of(cls, order: Order, payer: Payer, choices: list[ChannelChoice]) -> ChannelList:
        return cls(
            data=[
                ChannelOption(
                    channel=choice.channel.name,
                    gateway=choice.channel.gateway,
                    preferred=index == 0,
                    devices=sorted(choice.channel.profile.devices),
                    health=ChannelHealthOut.of(choice.health),
                )
                for index, choice in enumerate(choices)
            ],
            order_id=order.id,
            amount=order.amount_minor,
            currency=order.currency,
            device=payer.device,
        )


class AdminChannelOut(BaseModel):
    """A configured channel as staff see it: what it serves and how its gateway is doing."""

    object: Literal["channel"] = "channel"
    channel: str
    gateway: str
    currencies: list[str]
    devices: list[str]
    countries: list[str]
    health: ChannelHealthOut
