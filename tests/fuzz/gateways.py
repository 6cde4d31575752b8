"""Every gateway's notification, genuine and signed, for the fuzz tests: the adapter's settings
(test keys, no network), a valid notification, and a signer that signs any content again so
that fuzzed content can get past the signature to the parser behind it.

The keys and messages come from the adapters' own test material where there is some
(tests/channels/wechatpay/material.py, tests/channels/unionpay/material.py); Alipay's, Stripe's,
PayPal's and the test gateway's are made here with `cryptography` and the adapters' signing
modules (nothing here imports the simulators in knowpay.sandbox)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from knowpay.channels.alipay import signing as alipay_signing
from knowpay.channels.paypal import signing as paypal_signing
from knowpay.channels.stripe import signing as stripe_signing
from knowpay.channels.testchannel import signing as test_signing
from knowpay.channels.wechatpay import signing as wechat_signing
from knowpay.kit.config import (
    AlipaySettings,
    PayPalSettings,
    StripeSettings,
    UnionPaySettings,
    WechatPaySettings,
)
from tests.channels.unionpay import material as unionpay_material
from tests.channels.wechatpay import material as wechat_material

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""The clock of every fuzzed adapter (the UnionPay and WeChat Pay material's moment)."""
TIMESTAMP = int(NOW.timestamp())

ALIPAY_APP_ID = "2021000000000001"
ALIPAY_SELLER_ID = "2088000000000001"
STRIPE_WEBHOOK_SECRET = "whsec_fuzz"
PAYPAL_WEBHOOK_ID = "8PT597110X687430LKGECATA"
PAYPAL_CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-fuzz"
PAYPAL_BASE = "https://api-m.sandbox.paypal.com"
OUT_TRADE_NO = "pay_01jd3k0000000000000000000a"

Headers = dict[str, str]
Signer = Callable[[Any], tuple[Headers, bytes]]
"""Content (a form's fields, or a JSON document) → signed headers and body."""


@dataclass(frozen=True)
class Signed:
    """A gateway's notification content and how to sign (and encode) any content like it."""

    gateway: str
    content: Any
    sign: Signer
    form: bool = False
    """The content is a form (str → str), signed over its decoded values; else JSON."""

    def valid(self) -> tuple[Headers, bytes]:
        return self.sign(self.content)


@lru_cache(maxsize=8)
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def json_bytes(content: Any) -> bytes:
    """A JSON document as sent (bytes are sent as they are: a bomb, or not UTF-8)."""
    if isinstance(content, bytes):
        return content
    return json.dumps(content, separators=(",", ":")).encode()


# The test gateway ----------------------------------------------------------------------------


def test_gateway(key: bytes) -> Signed:
    content = {
        "id": "evt_test_1",
        "type": "payment.succeeded",
        "out_trade_no": OUT_TRADE_NO,
        "gateway_trade_no": "test_" + OUT_TRADE_NO,
        "amount": "99.00",
        "currency": "CNY",
        "paid_at": NOW.isoformat(),
    }

    def sign(value: Any) -> tuple[Headers, bytes]:
        body = json_bytes(value)
        signature = test_signing.sign(key, TIMESTAMP, body)
        return {test_signing.SIGNATURE_HEADER: signature, "content-type": "application/json"}, body

    return Signed("test", content, sign)


# Alipay --------------------------------------------------------------------------------------


def alipay_settings() -> AlipaySettings:
    return AlipaySettings(
        app_id=ALIPAY_APP_ID,
        private_key=_pem(rsa_key("alipay-app")),
        alipay_public_key=_public_pem(rsa_key("alipay")),
        gateway_url="https://openapi.alipay.test/gateway.do",
        seller_id=ALIPAY_SELLER_ID,
        timeout_s=1.0,
    )


def alipay() -> Signed:
    content = {
        "notify_id": "ac05099524730693a8b330c5ecf72da9786",
        "notify_type": "trade_status_sync",
        "notify_time": "2026-01-01 20:00:01",
        "app_id": ALIPAY_APP_ID,
        "seller_id": ALIPAY_SELLER_ID,
        "out_trade_no": OUT_TRADE_NO,
        "trade_no": "2026010122001400000000000001",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "99.00",
        "buyer_id": "2088102122524333",
        "gmt_payment": "2026-01-01 20:00:00",
        "subject": "课程 A&B=C+D",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "version": "1.0",
    }

    def sign(fields: dict[str, str]) -> tuple[Headers, bytes]:
        unsigned = {key: value for key, value in fields.items() if key != "sign"}
        content = alipay_signing.notification_signing_strings(unsigned)[0]
        signed = {**unsigned, "sign": alipay_signing.sign(content, rsa_key("alipay"))}
        try:  # in the form's own charset, as Alipay sends it, when Python can
            body = urlencode(signed, encoding=fields.get("charset") or "utf-8", errors="strict")
        except (LookupError, UnicodeError, TypeError, ValueError):
            body = urlencode(signed)
        return {"content-type": "application/x-www-form-urlencoded"}, body.encode("ascii")

    return Signed("alipay", content, sign, form=True)


# WeChat Pay ----------------------------------------------------------------------------------


def wechatpay_settings() -> WechatPaySettings:
    key = wechat_material.rsa_key
    return WechatPaySettings(
        mchid=wechat_material.MCHID,
        appid=wechat_material.APPID,
        merchant_private_key=wechat_material.private_pem(key("merchant")),
        merchant_serial_no=wechat_material.MERCHANT_SERIAL,
        apiv3_key=SecretStr(wechat_material.APIV3_KEY),
        platform_public_key=wechat_material.public_pem(key("platform")),
        platform_serial_no=wechat_material.PUBLIC_KEY_ID,
        base_url="https://api.mch.weixin.test",
        timeout_s=1.0,
    )


def wechatpay() -> Signed:
    """Content: the callback envelope with its resource in clear; the signer seals it."""
    envelope = json.loads(wechat_material.sealed_callback(wechat_material.transaction()))
    envelope["resource"]["plaintext"] = wechat_material.transaction()

    def sign(value: Any) -> tuple[Headers, bytes]:
        body = json_bytes(_sealed(value))
        message = wechat_signing.response_message(str(TIMESTAMP), "fuzz-nonce", body)
        return {
            "Wechatpay-Timestamp": str(TIMESTAMP),
            "Wechatpay-Nonce": "fuzz-nonce",
            "Wechatpay-Signature": wechat_signing.rsa_sign(
                wechat_material.rsa_key("platform"), message
            ),
            "Wechatpay-Serial": wechat_material.PUBLIC_KEY_ID,
            "Wechatpay-Signature-Type": wechat_signing.SCHEMA,
            "Content-Type": "application/json",
        }, body

    return Signed("wechatpay", envelope, sign)


def _sealed(envelope: Any) -> Any:
    """The envelope with resource.plaintext (any JSON, or bytes) encrypted into ciphertext."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("resource"), dict):
        return envelope
    resource = dict(envelope["resource"])
    if "plaintext" not in resource:
        return envelope
    plaintext = resource.pop("plaintext")
    raw = plaintext if isinstance(plaintext, bytes) else json_bytes(plaintext)
    nonce, associated = resource.get("nonce"), resource.get("associated_data")
    if isinstance(nonce, str) and isinstance(associated, str):
        try:
            sealed = AESGCM(wechat_material.APIV3_KEY.encode()).encrypt(
                nonce.encode(), raw, associated.encode()
            )
        except (ValueError, UnicodeEncodeError):  # a nonce AES-GCM cannot take: left unsealed
            sealed = raw
        resource["ciphertext"] = base64.b64encode(sealed).decode()
    return {**envelope, "resource": resource}


# UnionPay ------------------------------------------------------------------------------------


def unionpay_settings() -> UnionPaySettings:
    return unionpay_material.settings()


def unionpay() -> Signed:
    payment = unionpay_material.knowpay_id("pay", NOW - timedelta(minutes=1))
    content = {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "01",
        "txnSubType": "01",
        "bizType": "000201",
        "accessType": "0",
        "merId": unionpay_material.MER_ID,
        "orderId": payment.replace("_", "X"),
        "txnTime": "20260101195900",
        "txnAmt": "9900",
        "currencyCode": "156",
        "queryId": "761601011200000012345",
        "respCode": "00",
        "respMsg": "成功[0000000]",
        "traceNo": "123456",
        "traceTime": "0101200001",
    }

    def sign(fields: dict[str, str]) -> tuple[Headers, bytes]:
        unsigned = {k: v for k, v in fields.items() if k not in ("signature", "signPubKeyCert")}
        message = unionpay_material.from_unionpay(unsigned)
        if "signPubKeyCert" in fields:  # a fuzzed certificate, signed over as it is
            message["signPubKeyCert"] = fields["signPubKeyCert"]
            key = unionpay_material.signing_cert().key
            message["signature"] = unionpay_material.spec_signature(message, key)
        return {"content-type": "application/x-www-form-urlencoded"}, urlencode(message).encode()

    return Signed("unionpay", content, sign, form=True)


# Stripe --------------------------------------------------------------------------------------


def stripe_settings() -> StripeSettings:
    return StripeSettings(
        secret_key=SecretStr("sk_test_fuzz"),
        webhook_secret=SecretStr(STRIPE_WEBHOOK_SECRET),
        base_url="https://api.stripe.test",
        timeout_s=1.0,
    )


def stripe() -> Signed:
    content = {
        "id": "evt_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": TIMESTAMP,
        "livemode": False,
        "data": {
            "object": {
                "id": "pi_1",
                "object": "payment_intent",
                "amount": 1499,
                "amount_received": 1499,
                "currency": "usd",
                "metadata": {"out_trade_no": OUT_TRADE_NO},
                "status": "succeeded",
                "latest_charge": None,
                "last_payment_error": None,
            }
        },
    }

    def sign(value: Any) -> tuple[Headers, bytes]:
        body = json_bytes(value)
        header = stripe_signing.signature_header([STRIPE_WEBHOOK_SECRET], body, TIMESTAMP)
        return {"stripe-signature": header, "content-type": "application/json"}, body

    return Signed("stripe", content, sign)


# PayPal --------------------------------------------------------------------------------------


def paypal_settings(**changes: Any) -> PayPalSettings:
    fields: dict[str, Any] = {
        "client_id": "client-fuzz",
        "client_secret": SecretStr("secret-fuzz"),
        "webhook_id": PAYPAL_WEBHOOK_ID,
        "base_url": PAYPAL_BASE,
        "verify_mode": "offline",
        "cert_hosts": ["*.paypal.com"],
        "timeout_s": 1.0,
    }
    return PayPalSettings(**{**fields, **changes})


@lru_cache(maxsize=1)
def paypal_certificate_pem() -> bytes:
    """PayPal's signing certificate, self-signed, valid around NOW."""
    key = rsa_key("paypal")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def paypal() -> Signed:
    content = {
        "id": "WH-58D329510W468432D-8HN650336L201105X",
        "event_version": "1.0",
        "resource_type": "capture",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "summary": "Payment completed for $ 88.88 USD",
        "resource": {
            "id": "3C679366HH908993F",
            "status": "COMPLETED",
            "amount": {"currency_code": "USD", "value": "88.88"},
            "create_time": "2026-01-01T12:00:00Z",
            "invoice_id": OUT_TRADE_NO,
            "custom_id": OUT_TRADE_NO,
            "supplementary_data": {"related_ids": {"order_id": "5O190127TN364715T"}},
        },
    }

    def sign(value: Any) -> tuple[Headers, bytes]:
        body = json_bytes(value)
        transmission_id, transmission_time = "69cd13f0-d67a-11e5-baa3", "2026-01-01T12:00:00Z"
        message = paypal_signing.transmission_message(
            transmission_id, transmission_time, PAYPAL_WEBHOOK_ID, body
        )
        raw = rsa_key("paypal").sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "paypal-transmission-id": transmission_id,
            "paypal-transmission-time": transmission_time,
            "paypal-transmission-sig": base64.b64encode(raw).decode(),
            "paypal-cert-url": PAYPAL_CERT_URL,
            "paypal-auth-algo": "SHA256withRSA",
            "content-type": "application/json",
        }, body

    return Signed("paypal", content, sign)


def paypal_api(request: httpx.Request) -> httpx.Response:
    """PayPal as the adapter meets it while verifying: the certificate, a token, a postback
    that says SUCCESS to anything (so that any JSON reaches the parser), no orders."""
    if str(request.url) == PAYPAL_CERT_URL:
        return httpx.Response(200, content=paypal_certificate_pem())
    if request.url.path == "/v1/oauth2/token":
        return httpx.Response(200, json={"access_token": "A21-fuzz", "expires_in": 32400})
    if request.url.path == "/v1/notifications/verify-webhook-signature":
        return httpx.Response(200, json={"verification_status": "SUCCESS"})
    return httpx.Response(404, json={"name": "RESOURCE_NOT_FOUND", "message": "no such thing"})


def offline() -> httpx.Response:
    """An answer for any call that should not have been made."""
    return httpx.Response(404, json={})


SIGNATURE_HEADERS: dict[str, tuple[str, ...]] = {
    "test": (test_signing.SIGNATURE_HEADER,),
    "alipay": (),
    "wechatpay": (
        "wechatpay-timestamp",
        "wechatpay-nonce",
        "wechatpay-signature",
        "wechatpay-serial",
        "wechatpay-signature-type",
    ),
    "unionpay": (),
    "stripe": ("stripe-signature",),
    "paypal": (
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    ),
}
"""The headers each gateway's verification reads (random headers are drawn from these too)."""
