"""The Alipay channels. One gateway (`/notify/alipay`), three ways to pay:

- `alipay_page`: alipay.trade.page.pay, the PC cashier: a redirect to the signed gateway URL;
- `alipay_wap`: alipay.trade.wap.pay, the mobile-browser cashier: likewise;
- `alipay_qr`: alipay.trade.precreate, a QR code the buyer scans with the Alipay app.

Query, close, refund, refund query, the bill and notifications are the same for all three.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl

from knowpay.channels.alipay import bill, signing, transformers
from knowpay.channels.alipay.client import AlipayClient
from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelDeclined, ProtocolError, SignatureInvalid
from knowpay.channels.types import (
    Bill,
    ChannelProfile,
    ChannelStatus,
    CreatePaymentRequest,
    CreatePaymentResult,
    Device,
    Notification,
    NotificationAck,
    PaymentAction,
    PaymentQueryResult,
    RefundRequest,
    RefundResult,
)
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.money import Money

Product = Literal["page", "wap", "qr"]
_METHOD: dict[Product, str] = {
    "page": "alipay.trade.page.pay",
    "wap": "alipay.trade.wap.pay",
    "qr": "alipay.trade.precreate",
}
# python-alipay-sdk hard-codes QUICK_WAP_PAY; Alipay's documented code is QUICK_WAP_WAY.
_PRODUCT_CODE: dict[Product, str | None] = {
    "page": "FAST_INSTANT_TRADE_PAY",
    "wap": "QUICK_WAP_WAY",
    "qr": None,
}
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
CHARSETS = frozenset({"utf-8", "gbk", "gb2312", "gb18030"})
"""The `charset` values Alipay sends (by their Python codec names)."""
# page: a desktop browser; wap: a phone's browser or the Alipay app; qr: a screen to scan.
_DEVICES: dict[Product, frozenset[Device]] = {
    "page": frozenset({"desktop"}),
    "wap": frozenset({"mobile", "alipay"}),
    "qr": frozenset({"desktop"}),
}

BILL_READY_AFTER = timedelta(hours=9)
"""How long after its day ends the gateway's bill of that day is complete."""


class AlipayChannel:
    """One Alipay product behind the Channel interface; the three share one client."""

    gateway = "alipay"

    def __init__(self, name: str, product: Product, client: AlipayClient) -> None:
        self.name = name
        self.product = product
        self._client = client
        self.profile = ChannelProfile(
            currencies=frozenset({transformers.CURRENCY}),
            devices=_DEVICES[product],
            min_amount={transformers.CURRENCY: transformers.MIN_AMOUNT.amount_minor},
            max_amount={transformers.CURRENCY: transformers.MAX_AMOUNT.amount_minor},
            # The day's bill can be downloaded from 09:00 the next morning, Beijing time.
            bill_timezone=transformers.BEIJING,
            bill_ready_after=BILL_READY_AFTER,
        )

    def close(self) -> None:
        """Close the gateway's HTTP connections (channels of one gateway share them)."""
        self._client.close()

    # Payments ----------------------------------------------------------------------------

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        biz: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "total_amount": transformers.to_yuan(request.amount),
            "subject": transformers.subject(request.subject),
            "time_expire": transformers.beijing_time(request.expires_at),
        }
        product_code = _PRODUCT_CODE[self.product]
        if product_code:
            biz["product_code"] = product_code
        if self.product == "wap" and request.return_url:
            biz["quit_url"] = request.return_url
        method = _METHOD[self.product]
        if self.product == "qr":
            # Both: precreate is documented with the relative limit; time_expire, where it is
            # understood, is the exact one (a late payment is recorded as a duplicate anyway).
            biz["timeout_express"] = transformers.timeout_express(
                request.expires_at, self._client.clock.now()
            )
            content = self._client.call(
                method, biz, idempotent=False, notify_url=request.notify_url
            )
            qr_code = content.get("qr_code")
            if not isinstance(qr_code, str) or not qr_code:
                raise ProtocolError("alipay.trade.precreate answered without qr_code")
            return CreatePaymentResult(
                status=ChannelStatus.PENDING,
                action=PaymentAction(type="qr_code", code_url=qr_code),
            )
        url = self._client.page_url(
            method, biz, notify_url=request.notify_url, return_url=request.return_url
        )
        return CreatePaymentResult(
            status=ChannelStatus.PENDING, action=PaymentAction(type="redirect", url=url)
        )

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        try:
            content = self._client.call(
                "alipay.trade.query", {"out_trade_no": out_trade_no}, idempotent=True
            )
        except ChannelDeclined as declined:
            if declined.code == TRADE_NOT_EXIST:
                # Not scanned or not opened yet: nothing to say but "not paid so far".
                return PaymentQueryResult(status=ChannelStatus.PENDING)
            raise
        return transformers.query_result(content)

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        try:
            content = self._client.call(
                "alipay.trade.close", {"out_trade_no": out_trade_no}, idempotent=True
            )
        except ChannelDeclined as declined:
            if declined.code == TRADE_NOT_EXIST:
                # The buyer has not opened it yet, so there is nothing to close; but the QR
                # code or page URL still makes the trade when opened, until its time_expire:
                # not closed, so the attempt stays watched (payments/tasks.py).
                return PaymentQueryResult(status=ChannelStatus.PENDING)
            # Paid or closed meanwhile (ACQ.TRADE_STATUS_ERROR …): the query says which.
            result = self.query_payment(out_trade_no)
            if result.status in (ChannelStatus.SUCCEEDED, ChannelStatus.CLOSED):
                return result
            raise
        trade_no = content.get("trade_no")
        return PaymentQueryResult(
            status=ChannelStatus.CLOSED, gateway_trade_no=str(trade_no) if trade_no else None
        )

    # Refunds -----------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """Idempotent by out_request_no: a retry with the same number and amount is safe."""
        biz: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "out_request_no": request.out_refund_no,
            "refund_amount": transformers.to_yuan(request.amount),
            "refund_reason": request.payer_note[:256],
        }
        try:
            content = self._client.call("alipay.trade.refund", biz, idempotent=True)
        except ChannelDeclined as declined:
            return RefundResult(
                status=ChannelStatus.FAILED,
                failure_code=declined.code,
                failure_message=declined.message,
            )
        # Its refund_fee is the trade's total refunded, not this refund's: only the trade checks.
        transformers.check_refund_trade(content, request.gateway_trade_no)
        if content.get("fund_change") == "Y":
            trade_no = content.get("trade_no")
            return RefundResult(
                status=ChannelStatus.SUCCEEDED,
                gateway_refund_no=str(trade_no) if trade_no else None,
            )
        # fund_change=N: no money moved by this call (a repeat, or not done): ask.
        return self._query_refund(
            request.out_trade_no, request.out_refund_no, request.gateway_trade_no, request.amount
        )

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        return self._query_refund(out_trade_no, out_refund_no, gateway_trade_no, None)

    def _query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        gateway_trade_no: str | None,
        amount: Money | None,
    ) -> RefundResult:
        """The refund query; `amount`, when known, is the refund's (the answer must say it)."""
        biz = {
            "out_trade_no": out_trade_no,
            "out_request_no": out_refund_no,
            "query_options": ["gmt_refund_pay"],
        }
        try:
            content = self._client.call("alipay.trade.fastpay.refund.query", biz, idempotent=True)
        except ChannelDeclined as declined:
            if declined.code == TRADE_NOT_EXIST:
                return RefundResult(
                    status=ChannelStatus.PENDING,
                    failure_code=declined.code,
                    failure_message=declined.message,
                )
            raise
        return transformers.refund_query_result(content, gateway_trade_no, amount)

    # Notifications -----------------------------------------------------------------------

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        charset = _charset(headers, body)
        params = _form(body, charset)
        signature = params.get("sign")
        if not signature:
            raise SignatureInvalid("the notification carries no sign")
        if params.get("sign_type", signing.SIGN_TYPE) != signing.SIGN_TYPE:
            raise SignatureInvalid(f"sign_type {params.get('sign_type')!r} is not RSA2")
        if not self._client.verify_notification(params, signature, charset):
            raise SignatureInvalid("the notification's signature does not verify")
        if params.get("app_id") != self._client.app_id:
            raise ProtocolError(f"app_id {params.get('app_id')!r} is not ours")
        seller_id = self._client.seller_id
        if seller_id and params.get("seller_id") != seller_id:
            raise ProtocolError(f"seller_id {params.get('seller_id')!r} is not ours")
        return transformers.notification(params)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return transformers.ack(accepted)

    # Bills -------------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> Bill:
        return bill.fetch(self._client, bill_date)


def _charset(headers: Mapping[str, str], body: bytes) -> str:
    """The notification's charset: its `charset` field, else the Content-Type's, else UTF-8."""
    for key, value in parse_qsl(body.decode("ascii", errors="replace")):
        if key == "charset" and value:
            return value
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    for part in content_type.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def _form(body: bytes, charset: str) -> dict[str, str]:
    try:
        if codecs.lookup(charset).name not in CHARSETS:
            # Any other Python codec could decode to lone surrogates (raw_unicode_escape),
            # which no signature covers.
            raise LookupError("not a charset Alipay writes in")
        text = body.decode("ascii")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding=charset, errors="strict"
        )
    except (UnicodeDecodeError, ValueError, LookupError) as exc:
        raise ProtocolError(f"the notification is not a {charset} form: {exc}") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ProtocolError(f"the notification repeats {key!r}")
        params[key] = value
    return params


def build_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """The three Alipay channels, when app_id and both keys are configured (else none)."""
    alipay = settings.alipay
    if not (alipay.enabled and alipay.app_id and alipay.private_key and alipay.alipay_public_key):
        return {}
    client = AlipayClient(alipay, clock)
    channels: list[AlipayChannel] = [
        AlipayChannel("alipay_page", "page", client),
        AlipayChannel("alipay_wap", "wap", client),
        AlipayChannel("alipay_qr", "qr", client),
    ]
    return {channel.name: channel for channel in channels}
