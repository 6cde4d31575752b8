"""A stand-in for WeChat Pay's API in httpx.MockTransport: answers by (method, path) and signs
each 2xx answer with the platform key through wechatpayv3's rsa_sign."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from knowpay.channels.types import CreatePaymentRequest
from knowpay.channels.wechatpay.adapter import WechatPayChannel, WechatPayMerchant
from knowpay.channels.wechatpay.client import WechatPayClient, WechatPayConfig
from knowpay.kit.clock import FrozenClock
from knowpay.kit.money import Money
from tests.channels.wechatpay.material import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    rsa_key,
    wechat_headers,
)

BASE_URL = "https://api.mch.weixin.qq.com"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
Handler = Callable[[httpx.Request], tuple[int, Any]]


class FakeWechat:
    """Answers by (method, path), signing each 2xx answer as WeChat does."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.routes: dict[tuple[str, str], list[Handler]] = {}
        self.requests: list[httpx.Request] = []
        self.sign_with = rsa_key("platform")

    def on(self, method: str, path: str, *handlers: Handler) -> None:
        self.routes[(method, path)] = list(handlers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handlers = self.routes[(request.method, request.url.path)]
        handler = handlers.pop(0) if len(handlers) > 1 else handlers[0]
        status, data = handler(request)
        if isinstance(data, bytes):
            return httpx.Response(status, content=data)
        body = json.dumps(data).encode() if data is not None else b""
        headers = wechat_headers(body, int(self.clock.now().timestamp()), key=self.sign_with)
        return httpx.Response(status, content=body, headers=headers)


def answer(status: int, data: Any = None) -> Handler:
    return lambda _request: (status, data)


def merchant(wechat: FakeWechat, clock: FrozenClock, known: bool = True) -> WechatPayMerchant:
    config = WechatPayConfig(
        mchid=MCHID,
        appid=APPID,
        merchant_key=rsa_key("merchant"),
        merchant_serial_no=MERCHANT_SERIAL,
        apiv3_key=APIV3_KEY.encode(),
        base_url=BASE_URL,
        timeout_s=2.0,
        public_key_id=PUBLIC_KEY_ID if known else None,
    )
    keys = {PUBLIC_KEY_ID: rsa_key("platform").public_key()} if known else {}
    client = WechatPayClient(config, keys, clock, transport=httpx.MockTransport(wechat))
    return WechatPayMerchant(client, clock)


def channel(
    wechat: FakeWechat, clock: FrozenClock, name: str = "wechat_native"
) -> WechatPayChannel:
    return WechatPayChannel(name, merchant(wechat, clock), clock)


def create_request(**fields: Any) -> CreatePaymentRequest:
    base: dict[str, Any] = {
        "out_trade_no": "pay_01jd3k0000000000000000000a",
        "amount": Money(9900, "CNY"),
        "subject": "Python 数据分析 30 讲",
        "notify_url": "https://pay.example.com/notify/wechatpay",
        "expires_at": NOW + timedelta(minutes=30),
    }
    base.update(fields)
    return CreatePaymentRequest(**base)


def check_request_signature(request: httpx.Request) -> dict[str, str]:
    """The merchant's Authorization verifies over METHOD, URL (path and query), body."""
    scheme, _, rest = request.headers["Authorization"].partition(" ")
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    fields = dict(part.split("=", 1) for part in rest.split(","))
    fields = {k: v.strip('"') for k, v in fields.items()}
    message = (
        (
            f"{request.method}\n{request.url.raw_path.decode()}\n{fields['timestamp']}\n"
            f"{fields['nonce_str']}\n"
        ).encode()
        + request.content
        + b"\n"
    )
    rsa_key("merchant").public_key().verify(
        base64.b64decode(fields["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
    )
    assert (fields["mchid"], fields["serial_no"]) == (MCHID, MERCHANT_SERIAL)
    assert fields["timestamp"] == str(int(NOW.timestamp()))
    return fields
