"""The one interface every gateway adapter implements."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Protocol

from knowpay.channels.types import (
    Bill,
    ChannelProfile,
    CreatePaymentRequest,
    CreatePaymentResult,
    Notification,
    NotificationAck,
    PaymentQueryResult,
    RefundRequest,
    RefundResult,
)


class Channel(Protocol):
    """A payment gateway spoken in its own protocol. Adapters hold no database state."""

    name: str
    """The channel name callers use (`alipay_qr`, `wechat_native`, `test`)."""
    gateway: str
    """The notification route this channel's gateway calls: /notify/{gateway}."""
    profile: ChannelProfile
    """Currencies, devices, countries and amount caps this channel serves."""

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        """Open a trade at the gateway and say what the payer must do."""
        ...

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        """Ask the gateway about a trade (active query). `gateway_trade_no` is the gateway's
        own id when create_payment returned one (Stripe and PayPal name trades by it)."""
        ...

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        """Close an unpaid trade; returns the trade's status afterwards (it may have been paid)."""
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Ask for money back, idempotent by `out_refund_no`."""
        ...

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        """Ask the gateway about a refund (the gateway ids when known)."""
        ...

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        """Verify a notification over its raw bytes, then parse it (SignatureInvalid if forged)."""
        ...

    def notification_ack(self, accepted: bool) -> NotificationAck:
        """The answer the gateway expects for a notification we accepted (or did not)."""
        ...

    def fetch_bill(self, bill_date: date) -> Bill:
        """The gateway's statement of a day."""
        ...
