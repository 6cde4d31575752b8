"""Alipay RSA2: the signing string as Alipay's documentation gives it, and signatures
cross-checked against the independent python-alipay-sdk in both directions, so that neither
knowpay's channel nor its simulator can share a mistake with the other."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives import serialization

from knowpay.channels.alipay import signing
from knowpay.channels.alipay.client import AlipayClient
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import AlipaySettings
from knowpay.sandbox.alipay import crypto as gateway_crypto
from knowpay.sandbox.alipay import gateway as simulated_gateway
from tests.channels.alipay.conftest import KeyPair

# Alipay open platform, 自行实现签名 (docs.open.alipay.com/291/106118): the sample request and
# the exact string to be signed it documents.
DOC_BIZ_CONTENT = (
    '{"button":[{"actionParam":"ZFB_HFCZ","actionType":"out","name":"话费充值"},'
    '{"name":"查询","subButton":[{"actionParam":"ZFB_YECX","actionType":"out","name":"余额查询"},'
    '{"actionParam":"ZFB_LLCX","actionType":"out","name":"流量查询"},'
    '{"actionParam":"ZFB_HFCX","actionType":"out","name":"话费查询"}]},'
    '{"actionParam":"http://m.alipay.com","actionType":"link","name":"最新优惠"}]}'
)
DOC_PARAMS = {
    "method": "alipay.mobile.public.menu.add",
    "charset": "GBK",
    "sign_type": "RSA2",
    "timestamp": "2014-07-24 03:07:50",
    "biz_content": DOC_BIZ_CONTENT,
    "app_id": "2014072300007148",
    "version": "1.0",
    "sign": "ignored",
}
DOC_SIGNING_STRING = (
    f"app_id=2014072300007148&biz_content={DOC_BIZ_CONTENT}&charset=GBK"
    "&method=alipay.mobile.public.menu.add&sign_type=RSA2&timestamp=2014-07-24 03:07:50"
    "&version=1.0"
)
APP_ID = "2021000000000001"


def _sdk(signing_key: KeyPair, verifying_key: KeyPair) -> AliPay:
    """python-alipay-sdk signing with one key and verifying with another."""
    return AliPay(
        appid=APP_ID,
        app_notify_url=None,
        app_private_key_string=signing_key.private_pem,
        alipay_public_key_string=verifying_key.public_pem,
        sign_type="RSA2",
    )


def _their_string(sdk: AliPay, params: dict[str, str], excluded: tuple[str, ...]) -> str:
    ordered = sdk._ordered_data({k: v for k, v in params.items() if k not in excluded})
    return "&".join(f"{k}={v}" for k, v in ordered)


def test_the_documented_signing_string_is_built_exactly() -> None:
    assert signing.request_signing_string(DOC_PARAMS) == DOC_SIGNING_STRING
    assert gateway_crypto.request_content(DOC_PARAMS) == DOC_SIGNING_STRING


def test_requests_keep_sign_type_and_drop_empty_values_notifications_drop_both() -> None:
    params = {"b": "2", "a": "1", "sign": "S", "sign_type": "RSA2", "empty": ""}
    assert signing.request_signing_string(params) == "a=1&b=2&sign_type=RSA2"
    assert signing.notification_signing_strings(params) == ["a=1&b=2&empty=", "a=1&b=2"]
    assert signing.notification_signing_strings({"a": "x y", "sign": "S"}) == ["a=x y"]


def test_our_request_signature_is_byte_identical_to_the_sdks(
    app_key: KeyPair, alipay_key: KeyPair
) -> None:
    sdk = _sdk(app_key, alipay_key)
    settings = AlipaySettings(
        app_id=APP_ID, private_key=app_key.pkcs1_pem, alipay_public_key=alipay_key.public_pem
    )
    client = AlipayClient(settings, FrozenClock(datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)))
    ours = client.signed_params(
        "alipay.trade.precreate",
        {"out_trade_no": "pay_1", "total_amount": "99.00", "subject": "Python 数据分析 30 讲"},
        notify_url="https://pay.example.com/notify/alipay",
    )
    assert ours["timestamp"] == "2026-03-01 12:05:06"  # Beijing time
    theirs = dict(parse_qsl(sdk.sign_data({k: v for k, v in ours.items() if k != "sign"})))
    # PKCS#1 v1.5 is deterministic: the same string and key give the same signature.
    assert ours["sign"] == theirs["sign"]
    # …and the SDK, acting as the gateway with our app public key, verifies it.
    gateway_sdk = _sdk(alipay_key, app_key)
    assert gateway_sdk._verify(_their_string(sdk, ours, ("sign",)), ours["sign"])


def test_the_sdks_request_signature_verifies_with_ours_and_the_simulators(
    app_key: KeyPair, alipay_key: KeyPair
) -> None:
    sdk = _sdk(app_key, alipay_key)
    body = sdk.build_body("alipay.trade.query", {"out_trade_no": "pay_2"})
    params = dict(parse_qsl(sdk.sign_data(body)))
    assert signing.verify(signing.request_signing_string(params), params["sign"], app_key.public)
    content = gateway_crypto.request_content(params)
    assert gateway_crypto.verify(content, params["sign"], app_key.public)


def test_notifications_cross_verify_with_the_sdk(app_key: KeyPair, alipay_key: KeyPair) -> None:
    notice = {
        "notify_id": "2f4e5c6d",
        "app_id": APP_ID,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "99.00",
        "subject": "课程 A&B = 好",
        "sign_type": "RSA2",
    }
    # The SDK signs as Alipay would (its own string, without sign and sign_type) …
    alipay_side = _sdk(alipay_key, app_key)
    their_sign = alipay_side._sign(_their_string(alipay_side, notice, ("sign", "sign_type")))
    assert any(
        signing.verify(content, their_sign, alipay_key.public)
        for content in signing.notification_signing_strings({**notice, "sign": their_sign})
    )
    # … and verifies what the simulator signs.
    ours = gateway_crypto.sign(gateway_crypto.notify_content(notice), alipay_key.private)
    merchant_side = _sdk(app_key, alipay_key)
    assert merchant_side.verify(dict(notice), ours)
    assert not merchant_side.verify({**notice, "total_amount": "0.01"}, ours)


def test_a_simulator_answer_passes_the_sdks_response_verification(
    app_key: KeyPair, alipay_key: KeyPair
) -> None:
    merchant = simulated_gateway.Merchant(
        APP_ID, "2088000000000001", app_key.public, alipay_key.private
    )
    content = {"code": "10000", "msg": "Success", "qr_code": "https://qr.example/x?y=1"}
    raw = simulated_gateway.answer("alipay.trade.precreate", content, merchant, signed=True)
    assert "https:\\/\\/qr.example" in raw  # Alipay escapes slashes: re-serialising breaks sign
    sdk = _sdk(app_key, alipay_key)
    assert sdk._verify_and_return_sync_response(raw, "alipay_trade_precreate_response") == content
    split = signing.split_response(raw, "alipay.trade.precreate")
    assert split.sign is not None
    assert signing.verify(split.text, split.sign, alipay_key.public)
    reserialised = json.dumps(split.content, ensure_ascii=False, separators=(",", ":"))
    assert not signing.verify(reserialised, split.sign, alipay_key.public)


def test_an_sdk_signed_answer_verifies_over_the_raw_member_text(
    app_key: KeyPair, alipay_key: KeyPair
) -> None:
    member = '{ "code" : "10000", "msg":"Success", "sub_msg":"a } { \\" brace" }'
    sign = _sdk(alipay_key, app_key)._sign(member)
    raw = f'{{"sign":"{sign}",\n  "alipay_trade_query_response" :{member} }}'
    split = signing.split_response(raw, "alipay.trade.query")
    assert split.text == member
    assert signing.verify(split.text, split.sign or "", alipay_key.public)


def test_split_response_finds_error_response_and_refuses_what_is_not_alipays() -> None:
    raw = '{"error_response":{"code":"40002","sub_code":"isv.invalid-app-id"}}'
    split = signing.split_response(raw, "alipay.trade.query")
    assert (split.key, split.sign, split.content["code"]) == ("error_response", None, "40002")
    deep = '{"alipay_trade_query_response":' + "[" * 100_000 + "}"
    huge = '{"alipay_trade_query_response":{"n":' + "1" * 5000 + "}}"
    for broken in (
        "[]",
        "{",
        '{"other_response":{}}',
        '{"alipay_trade_query_response":1}',
        deep,
        huge,
    ):
        with pytest.raises(signing.MalformedBody):
            signing.split_response(broken, "alipay.trade.query")


def test_keys_are_accepted_as_pem_pkcs1_pkcs8_and_bare_base64(app_key: KeyPair) -> None:
    der_private = app_key.private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der_public = app_key.public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    numbers = app_key.private.private_numbers()
    for text in (app_key.private_pem, app_key.pkcs1_pem, base64.b64encode(der_private).decode()):
        assert signing.load_private_key(text).private_numbers() == numbers
    for text in (app_key.public_pem, base64.b64encode(der_public).decode()):
        assert signing.load_public_key(text).public_numbers() == app_key.public.public_numbers()
    with pytest.raises(signing.AlipayKeyError):
        signing.load_private_key("not a key at all")
    with pytest.raises(signing.AlipayKeyError):
        signing.load_public_key(app_key.private_pem)


def test_a_signature_made_with_another_key_or_garbage_does_not_verify(
    app_key: KeyPair, alipay_key: KeyPair
) -> None:
    signature = signing.sign("a=1", app_key.private)
    assert signing.verify("a=1", signature, app_key.public)
    assert not signing.verify("a=1", signature, alipay_key.public)
    assert not signing.verify("a=2", signature, app_key.public)
    assert not signing.verify("a=1", "%%%not base64", app_key.public)
