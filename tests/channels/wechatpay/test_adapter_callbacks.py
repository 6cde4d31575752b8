"""The adapter over httpx.MockTransport: callbacks verified and decrypted (cross-checked with
wechatpayv3), the trade bill checked against its signed hash, and building from settings."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date
from typing import Any

import pytest
from wechatpayv3 import core as v3_core

from knowpay.channels.errors import (
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.wechatpay.adapter import build_channels
from knowpay.channels.wechatpay.client import MalformedAnswer, UntrustedAnswer
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import WechatPaySettings, load_settings
from knowpay.kit.money import Money
from tests.channels.wechatpay import material
from tests.channels.wechatpay.fake_wechat import (
    BASE_URL,
    NOW,
    FakeWechat,
    answer,
    channel,
    check_request_signature,
)
from tests.channels.wechatpay.material import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    rsa_key,
    sealed_callback,
    transaction,
    wechat_headers,
)

# Callbacks -------------------------------------------------------------------------------------


def test_a_callback_is_verified_decrypted_and_agrees_with_wechatpayv3(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    body = sealed_callback(transaction())
    headers = wechat_headers(body, int(NOW.timestamp()))
    note = channel(wechat, clock).verify_and_parse_notification(headers, body)
    assert (note.kind, note.external_id, note.amount) == (
        "payment",
        "EV-2018022511223320873",
        Money(9900, "CNY"),
    )
    sdk = v3_core.Core(
        MCHID,
        MERCHANT_SERIAL,
        material.private_pem(rsa_key("merchant")),
        APIV3_KEY,
        public_key=material.public_pem(rsa_key("platform")),
        public_key_id=PUBLIC_KEY_ID,
    )
    theirs = json.loads(sdk.decrypt_callback(headers, body))
    assert theirs["out_trade_no"] == note.out_trade_no
    assert theirs["amount"]["total"] == note.amount.amount_minor


@pytest.mark.parametrize("problem", ["forged", "other_apiv3_key", "stale", "tampered"])
def test_a_bad_callback_is_refused(wechat: FakeWechat, clock: FrozenClock, problem: str) -> None:
    key = "b" * 32 if problem == "other_apiv3_key" else APIV3_KEY
    body = sealed_callback(transaction(), apiv3_key=key)
    if problem == "tampered":
        envelope = json.loads(body)
        sealed = base64.b64decode(envelope["resource"]["ciphertext"])
        envelope["resource"]["ciphertext"] = base64.b64encode(
            bytes([sealed[0] ^ 1]) + sealed[1:]
        ).decode()
        body = json.dumps(envelope).encode()
    timestamp = int(NOW.timestamp()) - (600 if problem == "stale" else 0)
    signer = rsa_key("stranger") if problem == "forged" else None
    headers = wechat_headers(body, timestamp, key=signer)
    with pytest.raises(SignatureInvalid):
        channel(wechat, clock).verify_and_parse_notification(headers, body)


def test_a_callback_for_another_app_is_a_protocol_error(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    body = sealed_callback(transaction(appid="wx0000000000000000"))
    with pytest.raises(ProtocolError, match="appid"):
        channel(wechat, clock).verify_and_parse_notification(
            wechat_headers(body, int(NOW.timestamp())), body
        )


# Bills ---------------------------------------------------------------------------------------


def test_the_trade_bill_is_downloaded_and_checked_against_its_signed_hash(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    text = "交易时间,公众账号ID,商户号,微信订单号,商户订单号,交易状态,货币种类,订单金额\r\n"
    text += "`2026-01-01 20:00:05,`wx1,`1900000109,`42001,`pay_1,`SUCCESS,`CNY,`99.00\r\n"
    raw = text.encode()
    url = f"{BASE_URL}/v3/billdownload/file?token=abc"
    digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
    meta = {"hash_type": "SHA1", "hash_value": digest, "download_url": url}
    wechat.on("GET", "/v3/bill/tradebill", answer(200, meta))
    wechat.on("GET", "/v3/billdownload/file", answer(200, raw))
    bill = channel(wechat, clock).fetch_bill(date(2026, 1, 1))
    assert [(line.out_trade_no, line.amount) for line in bill.lines] == [
        ("pay_1", Money(9900, "CNY"))
    ]
    assert wechat.requests[0].url.params["bill_date"] == "2026-01-01"
    check_request_signature(wechat.requests[1])
    wechat.on("GET", "/v3/billdownload/file", answer(200, raw + b"`"))
    with pytest.raises(UntrustedAnswer):
        channel(wechat, clock).fetch_bill(date(2026, 1, 1))
    wechat.on(
        "GET", "/v3/bill/tradebill", answer(200, {**meta, "download_url": "https://evil.example/x"})
    )
    with pytest.raises(MalformedAnswer):
        channel(wechat, clock).fetch_bill(date(2026, 1, 1))
    wechat.on(
        "GET",
        "/v3/bill/tradebill",
        answer(400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}),
    )
    assert channel(wechat, clock).fetch_bill(date(2026, 1, 2)).lines == []


# Building from settings -------------------------------------------------------------------------


def _settings(**fields: Any) -> WechatPaySettings:
    base: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "merchant_private_key": material.private_pem(rsa_key("merchant")),
        "merchant_serial_no": MERCHANT_SERIAL,
        "apiv3_key": APIV3_KEY,
        "platform_public_key": material.public_pem(rsa_key("platform")),
        "platform_serial_no": PUBLIC_KEY_ID,
    }
    base.update(fields)
    return WechatPaySettings(**base)


def test_build_channels_needs_the_merchant_credentials(clock: FrozenClock) -> None:
    assert build_channels(load_settings(), clock) == {}
    assert build_channels(load_settings(wechatpay=_settings(apiv3_key=None)), clock) == {}
    assert build_channels(load_settings(wechatpay=_settings(enabled=False)), clock) == {}
    channels = build_channels(load_settings(wechatpay=_settings()), clock)
    assert sorted(channels) == ["wechat_h5", "wechat_jsapi", "wechat_native"]
    assert {c.gateway for c in channels.values()} == {"wechatpay"}
    # Certificate mode: no platform key configured, fetched from /v3/certificates when needed.
    assert (
        len(build_channels(load_settings(wechatpay=_settings(platform_public_key=None)), clock))
        == 3
    )


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"apiv3_key": "short"}, "32 bytes"), ({"platform_serial_no": None}, "PLATFORM_SERIAL_NO")],
)
def test_bad_credentials_fail_loudly(
    clock: FrozenClock, fields: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        build_channels(load_settings(wechatpay=_settings(**fields)), clock)
