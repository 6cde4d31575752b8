"""The WeChat Pay API v3 channels: `wechat_native` (QR code), `wechat_jsapi` (the signed JS call
of an official account or mini-program) and `wechat_h5` (a mobile browser redirect). All three
share one merchant, one HTTP client and the gateway `wechatpay` (/notify/wechatpay)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, timedelta
from urllib.parse import quote, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelDeclined
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
from knowpay.channels.wechatpay import signing, transformers
from knowpay.channels.wechatpay.bill import parse_trade_bill
from knowpay.channels.wechatpay.client import (
    Answer,
    GatewayRefused,
    MalformedAnswer,
    UntrustedAnswer,
    WechatPayApiError,
    WechatPayClient,
    WechatPayConfig,
)
from knowpay.channels.wechatpay.transformers import ErrorKind, TradeType
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings, WechatPaySettings

GATEWAY = "wechatpay"
CHANNELS: dict[str, TradeType] = {
    "wechat_native": "native",
    "wechat_jsapi": "jsapi",
    "wechat_h5": "h5",
}
# native: a QR code on a desktop screen; jsapi: inside WeChat; h5: a phone browser outside it.
_DEVICES: dict[TradeType, frozenset[Device]] = {
    "native": frozenset({"desktop"}),
    "jsapi": frozenset({"wechat"}),
    "h5": frozenset({"mobile"}),
}

BILL_READY_AFTER = timedelta(hours=10)
"""How long after its day ends the gateway's bill of that day is complete."""


class WechatPayMerchant:
    """One WeChat Pay merchant account spoken to over API v3 (shared by the three channels)."""

    def __init__(self, client: WechatPayClient, clock: Clock) -> None:
        self.client = client
        self.config = client.config
        self._clock = clock

    # Trades --------------------------------------------------------------------------------

    def prepay(self, trade_type: TradeType, request: CreatePaymentRequest) -> Answer:
        """POST /v3/pay/transactions/{trade_type}. Not retried: a repeat is a new request."""
        body = transformers.prepay_body(trade_type, request, self.config.appid, self.config.mchid)
        return self.client.call(
            "POST", f"/v3/pay/transactions/{trade_type}", body=body, idempotent=False
        )

    def query(self, out_trade_no: str) -> PaymentQueryResult:
        try:
            answer = self.client.call(
                "GET",
                f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}",
                params={"mchid": self.config.mchid},
                idempotent=True,
            )
        except WechatPayApiError as exc:
            if exc.error.kind is ErrorKind.NOT_FOUND:
                return PaymentQueryResult(
                    status=ChannelStatus.PENDING,
                    failure_code=exc.error.code,
                    failure_message=exc.error.message,
                )
            raise GatewayRefused(exc.error.code, exc.error.message) from exc
        self._check_ours(answer.data, out_trade_no)
        try:
            return transformers.query_result(answer.data)
        except (KeyError, ValueError) as exc:
            raise MalformedAnswer(f"the query answer is incomplete: {exc}") from exc

    def close(self, out_trade_no: str) -> PaymentQueryResult:
        """Close an unpaid trade (204). A paid one answers ORDERPAID: then the query says how."""
        try:
            self.client.call(
                "POST",
                f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close",
                body={"mchid": self.config.mchid},
                idempotent=True,
            )
        except WechatPayApiError as exc:
            if exc.error.kind is ErrorKind.ALREADY_PAID:
                return self.query(out_trade_no)
            if exc.error.kind is ErrorKind.NOT_FOUND:
                # Not there yet: an order whose create call knowpay gave up on may still be
                # made by it. Not closed, so the attempt stays watched (payments/tasks.py).
                return PaymentQueryResult(status=ChannelStatus.PENDING)
            raise GatewayRefused(exc.error.code, exc.error.message) from exc
        return PaymentQueryResult(status=ChannelStatus.CLOSED)

    def _check_ours(self, transaction: dict[str, object], out_trade_no: str) -> None:
        for field, expected in (
            ("mchid", self.config.mchid),
            ("appid", self.config.appid),
            ("out_trade_no", out_trade_no),
        ):
            if transaction.get(field) != expected:
                raise MalformedAnswer(f"the answer's {field} is {transaction.get(field)!r}")

    # Refunds -------------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """POST /v3/refund/domestic/refunds; retried safely since out_refund_no dedupes."""
        try:
            answer = self.client.call(
                "POST",
                "/v3/refund/domestic/refunds",
                body=transformers.refund_body(request),
                idempotent=True,
            )
        except WechatPayApiError as exc:
            return RefundResult(
                status=ChannelStatus.FAILED,
                failure_code=exc.error.code,
                failure_message=exc.error.message,
            )
        return self._refund_answer(answer, request.out_trade_no, request.out_refund_no)

    def query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundResult:
        try:
            answer = self.client.call(
                "GET",
                f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}",
                idempotent=True,
            )
        except WechatPayApiError as exc:
            if exc.error.kind is ErrorKind.NOT_FOUND:
                return RefundResult(status=ChannelStatus.PENDING, failure_code=exc.error.code)
            raise GatewayRefused(exc.error.code, exc.error.message) from exc
        return self._refund_answer(answer, out_trade_no, out_refund_no)

    @staticmethod
    def _refund_answer(answer: Answer, out_trade_no: str, out_refund_no: str) -> RefundResult:
        data = answer.data
        if data.get("out_refund_no") != out_refund_no or data.get("out_trade_no") != out_trade_no:
            raise MalformedAnswer("the refund answer names another refund or trade")
        return transformers.refund_result(data)

    # Notifications -------------------------------------------------------------------------

    def verify_and_parse(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Signature over the raw body (and freshness), then decryption, then our mchid/appid."""
        signing.verify_signed(headers, body, self.client.keys, self._clock.now())
        envelope = transformers.loads_object(body, "the callback")
        sealed = transformers.encrypted_resource(envelope)
        plaintext = signing.aead_decrypt(self.config.apiv3_key, **sealed)
        resource = transformers.loads_object(plaintext, "the callback resource")
        return transformers.notification_of(
            envelope, resource, appid=self.config.appid, mchid=self.config.mchid
        )

    # Bills ---------------------------------------------------------------------------------

    def trade_bill(self, bill_date: date) -> Bill:
        """GET /v3/bill/tradebill → download_url → the file, checked against the signed hash."""
        try:
            answer = self.client.call(
                "GET",
                "/v3/bill/tradebill",
                params={"bill_date": bill_date.isoformat(), "bill_type": "ALL"},
                idempotent=True,
            )
        except WechatPayApiError as exc:
            if exc.error.kind is ErrorKind.NOT_FOUND:  # NO_STATEMENT_EXIST: nothing that day
                return Bill(bill_date, [])
            raise GatewayRefused(exc.error.code, exc.error.message) from exc
        url = str(answer.data.get("download_url") or "")
        base, target = urlsplit(self.config.base_url), urlsplit(url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise MalformedAnswer(f"the bill download_url is not on {base.netloc}: {url!r}")
        raw = self.client.download(url)
        hash_type = str(answer.data.get("hash_type", "SHA1")).upper()
        if hash_type != "SHA1":
            raise MalformedAnswer(f"unknown bill hash_type {hash_type!r}")
        expected = str(answer.data.get("hash_value", "")).lower()
        if hashlib.sha1(raw, usedforsecurity=False).hexdigest() != expected:
            raise UntrustedAnswer("the bill file does not match its signed SHA1 hash")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedAnswer(f"the bill file is not UTF-8: {exc.reason}") from exc
        return parse_trade_bill(text, bill_date)


_PAYER_FIELDS: dict[str, frozenset[str]] = {
    "jsapi": frozenset({"openid"}),
    # WeChat matches payer_client_ip against the browser that opens h5_url.
    "h5": frozenset({"client_ip"}),
}
"""What a trade type cannot be opened without (refused before anything is written)."""


class WechatPayChannel:
    """One of the three WeChat Pay channels; everything but opening the trade is shared."""

    gateway = GATEWAY

    def __init__(self, name: str, merchant: WechatPayMerchant, clock: Clock) -> None:
        self.name = name
        self.trade_type: TradeType = CHANNELS[name]
        self.merchant = merchant
        self._clock = clock
        self.profile = ChannelProfile(
            currencies=frozenset({transformers.CURRENCY}),
            devices=_DEVICES[self.trade_type],
            payer_fields=_PAYER_FIELDS.get(self.trade_type, frozenset()),
            # The trade bill of a day is ready after 10:00 the next morning, Beijing time.
            bill_timezone=transformers.BEIJING,
            bill_ready_after=BILL_READY_AFTER,
        )

    def close(self) -> None:
        """Close the gateway's HTTP connections (channels of one gateway share them)."""
        self.merchant.client.close()

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        if self.trade_type == "jsapi" and not request.options.get("openid"):
            raise ChannelDeclined("missing_openid", "wechat_jsapi needs the payer's openid.")
        if self.trade_type == "h5" and not request.client_ip:
            raise ChannelDeclined("missing_client_ip", "wechat_h5 needs the payer's client_ip.")
        try:
            answer = self.merchant.prepay(self.trade_type, request)
        except WechatPayApiError as exc:
            if exc.error.kind is ErrorKind.ALREADY_PAID:
                return self._already_paid(request.out_trade_no, exc)
            raise ChannelDeclined(exc.error.code, exc.error.message) from exc
        return CreatePaymentResult(
            status=ChannelStatus.PENDING, action=self._action(answer, request)
        )

    def _already_paid(self, out_trade_no: str, exc: WechatPayApiError) -> CreatePaymentResult:
        # Only a verified query may say it was paid; the error itself is not signed.
        found = self.merchant.query(out_trade_no)
        if found.status is not ChannelStatus.SUCCEEDED:
            raise ChannelDeclined(exc.error.code, exc.error.message) from exc
        return CreatePaymentResult(
            status=ChannelStatus.SUCCEEDED,
            action=PaymentAction(type="none"),
            gateway_trade_no=found.gateway_trade_no,
            paid_amount=found.amount,
        )

    def _action(self, answer: Answer, request: CreatePaymentRequest) -> PaymentAction:
        field = {"native": "code_url", "jsapi": "prepay_id", "h5": "h5_url"}[self.trade_type]
        value = answer.data.get(field)
        if not isinstance(value, str) or not value:
            raise MalformedAnswer(f"the prepay answer has no {field}")
        if self.trade_type == "native":
            return PaymentAction(type="qr_code", code_url=value)
        if self.trade_type == "h5":
            if request.return_url:
                value += "&" + urlencode({"redirect_url": request.return_url})
            return PaymentAction(type="redirect", url=value)
        return PaymentAction(type="client_secret", client_secret=self._js_call(value))

    def _js_call(self, prepay_id: str) -> str:
        """The parameters of wx.requestPayment / WeixinJSBridge, signed with the merchant key."""
        config = self.merchant.config
        timestamp = str(int(self._clock.now().timestamp()))
        nonce = signing.new_nonce()
        package = f"prepay_id={prepay_id}"
        pay_sign = signing.js_pay_sign(config.merchant_key, config.appid, timestamp, nonce, package)
        return json.dumps(
            {
                "appId": config.appid,
                "timeStamp": timestamp,
                "nonceStr": nonce,
                "package": package,
                "signType": "RSA",
                "paySign": pay_sign,
            },
            separators=(",", ":"),
        )

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        return self.merchant.query(out_trade_no)

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        return self.merchant.close(out_trade_no)

    def refund(self, request: RefundRequest) -> RefundResult:
        return self.merchant.refund(request)

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        return self.merchant.query_refund(out_trade_no, out_refund_no)

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        return self.merchant.verify_and_parse(headers, body)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return transformers.notification_ack(accepted)

    def fetch_bill(self, bill_date: date) -> Bill:
        return self.merchant.trade_bill(bill_date)


# Building from settings ------------------------------------------------------------------------


def _platform_keys(settings: WechatPaySettings) -> tuple[dict[str, rsa.RSAPublicKey], str | None]:
    """The configured verification key by serial, and the public-key id to announce (if any)."""
    if not settings.platform_public_key:
        return {}, None  # platform-certificate mode: fetched from /v3/certificates when needed
    key = signing.load_public_key(settings.platform_public_key)
    serial = settings.platform_serial_no
    if not serial and "CERTIFICATE" in settings.platform_public_key:
        certificate = x509.load_pem_x509_certificate(settings.platform_public_key.encode())
        serial = signing.certificate_serial(certificate)
    if not serial:
        raise ValueError("KNOWPAY_WECHATPAY__PLATFORM_SERIAL_NO is required with a public key")
    public_key_id = serial if serial.startswith(signing.PUBLIC_KEY_ID_PREFIX) else None
    return {serial: key}, public_key_id


def build_merchant(settings: WechatPaySettings, clock: Clock) -> WechatPayMerchant | None:
    """The merchant when mchid, appid, merchant key and serial and API v3 key are all set."""
    if not settings.enabled:
        return None
    if not (
        settings.mchid
        and settings.appid
        and settings.merchant_private_key
        and settings.merchant_serial_no
        and settings.apiv3_key
    ):
        return None
    known, public_key_id = _platform_keys(settings)
    config = WechatPayConfig(
        mchid=settings.mchid,
        appid=settings.appid,
        merchant_key=signing.load_private_key(settings.merchant_private_key),
        merchant_serial_no=settings.merchant_serial_no,
        apiv3_key=signing.check_apiv3_key(settings.apiv3_key.get_secret_value()),
        base_url=settings.base_url,
        timeout_s=settings.timeout_s,
        public_key_id=public_key_id,
    )
    return WechatPayMerchant(WechatPayClient(config, known, clock), clock)


def build_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """wechat_native, wechat_jsapi and wechat_h5, or nothing when WeChat Pay is not configured."""
    merchant = build_merchant(settings.wechatpay, clock)
    if merchant is None:
        return {}
    return {name: WechatPayChannel(name, merchant, clock) for name in CHANNELS}
