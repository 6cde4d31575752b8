"""Neutral data the core and the adapters exchange; the core speaks only Money."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from knowpay.kit.money import Money

CHANNEL_GATEWAYS: Mapping[str, str] = MappingProxyType(
    {
        "alipay_page": "alipay",
        "alipay_wap": "alipay",
        "alipay_qr": "alipay",
        "wechat_native": "wechatpay",
        "wechat_jsapi": "wechatpay",
        "wechat_h5": "wechatpay",
        "unionpay": "unionpay",
        "stripe": "stripe",
        "paypal": "paypal",
        "wallet": "wallet",
        "test": "test",
    }
)
"""Every channel name (API.md) and the gateway that runs it: the one whose notifications,
at /notify/{gateway}, may speak of the channel's trades."""


class ChannelStatus(StrEnum):
    """A gateway's view of a trade, mapped at the adapter's edge. Unknown means pending."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CLOSED = "closed"


Device = Literal["desktop", "mobile", "wechat", "alipay"]
"""Where the payer is: a desktop browser, a mobile browser, inside WeChat, inside Alipay."""

ALL_DEVICES: frozenset[Device] = frozenset({"desktop", "mobile", "wechat", "alipay"})


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    """What a channel can serve; the order's channel list filters on it."""

    currencies: frozenset[str]
    devices: frozenset[Device] = ALL_DEVICES
    countries: frozenset[str] = frozenset()
    """ISO 3166 alpha-2 codes of the payers' countries it serves; empty means any."""
    max_amount: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """The gateway's single-payment cap per currency, in minor units (absent: no cap)."""
    min_amount: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """The smallest amount the gateway accepts per currency, in minor units."""
    payer_fields: frozenset[str] = frozenset()
    """Fields of the payment request the channel cannot open a trade without (`openid` for
    WeChat JSAPI): asked for by name they are a 422, and routing passes the channel by."""
    bill_timezone: tzinfo = UTC
    """The clock of the gateway's daily bill: the bill of day D covers D 00:00–24:00 there."""
    bill_ready_after: timedelta = timedelta(hours=1)
    """How long after its day ends the gateway's bill of that day is complete."""
    has_bills: bool = True
    """Whether `fetch_bill` can fetch the gateway's bill (reconciliation asks only those)."""

    def can_charge(self, amount_minor: int, currency: str) -> bool:
        """Whether an amount in a currency is within what the gateway accepts."""
        if currency not in self.currencies:
            return False
        cap = self.max_amount.get(currency)
        floor = self.min_amount.get(currency, 1)
        return amount_minor >= floor and (cap is None or amount_minor <= cap)


@dataclass(frozen=True, slots=True)
class PaymentAction:
    """What the payer must do next."""

    type: Literal["redirect", "qr_code", "client_secret", "none"]
    url: str | None = None
    code_url: str | None = None
    client_secret: str | None = None

    def as_dict(self) -> dict[str, str]:
        data = {
            "type": self.type,
            "url": self.url,
            "code_url": self.code_url,
            "client_secret": self.client_secret,
        }
        return {key: value for key, value in data.items() if value is not None}


@dataclass(frozen=True, slots=True)
class CreatePaymentRequest:
    out_trade_no: str
    amount: Money
    subject: str
    notify_url: str
    expires_at: datetime
    return_url: str | None = None
    client_ip: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreatePaymentResult:
    status: ChannelStatus
    action: PaymentAction
    gateway_trade_no: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    paid_amount: Money | None = None


@dataclass(frozen=True, slots=True)
class PaymentQueryResult:
    status: ChannelStatus
    gateway_trade_no: str | None = None
    amount: Money | None = None
    paid_at: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    out_trade_no: str
    out_refund_no: str
    amount: Money
    total: Money
    reason: str
    """knowpay's reason code (`accidental_purchase` …), for gateways that take a code."""
    notify_url: str
    gateway_trade_no: str | None = None
    note: str | None = None
    """The buyer's or staff's own words for the refund, when given."""

    @property
    def payer_note(self) -> str:
        """What gateways that show the payer a reason show: the words given (without control
        characters, which a gateway may refuse), else the code in plain words."""
        words = "".join(c for c in self.note or "" if unicodedata.category(c) != "Cc").strip()
        return words or self.reason.replace("_", " ")


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: ChannelStatus
    gateway_refund_no: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    attention: str | None = None
    """Set when the gateway holds the refund until somebody acts (WeChat Pay's ABNORMAL: the
    payer's card or account can no longer take it): what staff must do, in a sentence."""


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified gateway notification, reduced to what the core needs."""

    kind: Literal["payment", "refund"]
    external_id: str
    out_trade_no: str
    status: ChannelStatus
    gateway_trade_no: str | None = None
    amount: Money | None = None
    merchant_id: str | None = None
    out_refund_no: str | None = None
    paid_at: datetime | None = None
    gateway_refund_no: str | None = None
    payer_account: str | None = None
    """The paying account as the gateway names it (Alipay buyer_id, WeChat openid), for the
    risk blacklist; never shown unmasked."""
    attention: str | None = None
    """A verified event knowpay cannot settle by itself and staff must act on (a capture the
    gateway reversed, a refund it holds): what happened, in a sentence for the alert."""
    trade_amount: Money | None = None
    """For a refund: the amount of the payment it refunds, where the gateway states it
    (Alipay's total_amount, WeChat Pay's amount.total). It must be the payment's amount."""
    failure_code: str | None = None
    """For a failed payment or refund: the gateway's reason (Stripe's failure_reason, PayPal's
    status_details.reason), kept as the query's path keeps it."""
    failure_message: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationAck:
    """The exact answer a gateway expects to stop retrying (or to retry)."""

    status_code: int
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class BillLine:
    out_trade_no: str
    gateway_trade_no: str
    amount: Money
    kind: Literal["payment", "refund"]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Bill:
    bill_date: date
    lines: list[BillLine]
