"""WeChat Pay v3 signatures and AES-GCM: WeChat's published test vector, and cross-checks with
the independent wechatpayv3 package in both directions."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import core as v3_core
from wechatpayv3 import utils as v3

from knowpay.channels.errors import SignatureInvalid, SignatureProbe
from knowpay.channels.wechatpay import signing
from knowpay.kit.clock import FrozenClock
from tests.channels.wechatpay import material
from tests.channels.wechatpay.material import (
    APIV3_KEY,
    MCHID,
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    rsa_key,
    wechat_headers,
)

# WeChat's "签名生成" example (JSAPI prepay, mchid 1230000109) signed with its published test
# key; the expected value is the one the document prints (also in public SDK test copies).
DOC_BODY = (
    '{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔",'
    '"out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php",'
    '"amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}'
)
DOC_SIGNATURE = (
    "gEuexJ547PHFV77TQ6eiE4tphVYfWfUe1Wc2dBmVnoMYU2rl/M4zhw+b3vBhuMw6AC7pteNkryLA7UWU2h+umo0OdSuu"
    "Lm1++O3NckQPCSfm6dypsjn4GYm84KMqXWFrhFmyxEwIdEJDr3w1UYfxOcu55OQupfLkrt/ZzuOspnliJFrPzGQFUk7lG"
    "qMMtpz3EfbDUNxnVsHblORg3hVmuYNmbGWnS2ovU30Y2Q+iKFDxzkaXBk8LTy6HzvxizRo6Q+J4SVM7O0hKXfgo1QdI68"
    "kpzNULb3EVBXlhTyPUzhkHzzLxECL1qHl3HH2hEv8++C+4wBlsagF3j/O6PABojA=="
)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _keys() -> signing.PlatformKeys:
    return signing.PlatformKeys({PUBLIC_KEY_ID: rsa_key("platform").public_key()})


# Request signing -------------------------------------------------------------------------------


def test_the_request_message_and_signature_match_wechats_published_example() -> None:
    message = signing.request_message(
        "POST",
        "/v3/pay/transactions/jsapi",
        "1554208460",
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        DOC_BODY.encode(),
    )
    assert (
        message
        == (
            "POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n"
            + DOC_BODY
            + "\n"
        ).encode()
    )
    key = signing.load_private_key(material.WECHAT_DOC_TEST_KEY)  # PKCS#1 PEM
    assert signing.rsa_sign(key, message) == DOC_SIGNATURE


def test_a_get_signs_an_empty_body_as_an_empty_last_line() -> None:
    message = signing.request_message(
        "GET", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", b""
    )
    assert message == b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"


def test_our_authorization_header_equals_wechatpayv3s(monkeypatch: pytest.MonkeyPatch) -> None:
    key = rsa_key("merchant")
    monkeypatch.setattr(v3.time, "time", lambda: 1767268800.4)
    body = json.dumps({"mchid": MCHID, "amount": {"total": 1}})
    path = "/v3/pay/transactions/native"
    theirs = v3.build_authorization(
        path, "POST", MCHID, MERCHANT_SERIAL, key, data=body, nonce_str="N0NCE"
    )
    signature = signing.rsa_sign(
        key, signing.request_message("POST", path, "1767268800", "N0NCE", body.encode())
    )
    ours = signing.authorization(MCHID, MERCHANT_SERIAL, "N0NCE", "1767268800", signature)
    assert ours == theirs


def test_the_js_pay_sign_equals_wechatpayv3_core_sign() -> None:
    key = rsa_key("merchant")
    sdk = v3_core.Core(
        MCHID,
        MERCHANT_SERIAL,
        material.private_pem(key),
        APIV3_KEY,
        public_key=material.public_pem(rsa_key("platform")),
        public_key_id=PUBLIC_KEY_ID,
    )
    fields = ["wx8888888888888888", "1414561699", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"]
    package = "prepay_id=wx201410272009395522657a690389285100"
    assert sdk.sign([*fields, package]) == signing.js_pay_sign(key, *fields, package)


# Verifying responses and callbacks ---------------------------------------------------------------


def test_a_wechatpayv3_signed_response_verifies_with_ours_under_any_header_case() -> None:
    body = json.dumps({"code_url": "weixin://wxpay/bizpayurl?pr=abc"}).encode()
    headers = wechat_headers(body, int(NOW.timestamp()))
    signing.verify_signed(headers, body, _keys(), NOW)
    lowered = {k.lower(): v for k, v in headers.items()}
    signing.verify_signed(lowered, body, _keys(), NOW)


def test_our_response_signature_verifies_with_wechatpayv3() -> None:
    key = rsa_key("platform")
    body = '{"prepay_id":"wx201410272009395522657a690389285100"}'
    signature = signing.rsa_sign(key, signing.response_message("1767268800", "abc", body.encode()))
    assert v3.rsa_verify("1767268800", "abc", body, signature, key.public_key())
    assert not v3.rsa_verify("1767268800", "abd", body, signature, key.public_key())


@pytest.mark.parametrize(
    "change",
    ["body", "timestamp", "nonce", "key", "serial", "probe", "signature_type", "garbage"],
)
def test_anything_altered_fails_verification(change: str) -> None:
    body = b'{"trade_state":"SUCCESS"}'
    timestamp = int(NOW.timestamp())
    key = rsa_key("stranger") if change == "key" else None
    headers = wechat_headers(body, timestamp, key=key)
    if change == "body":
        body = b'{"trade_state":"SUCCESS" }'
    elif change == "timestamp":
        headers["Wechatpay-Timestamp"] = str(timestamp - 1)
    elif change == "nonce":
        headers["Wechatpay-Nonce"] += "x"
    elif change == "serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_0000"
    elif change == "probe":
        headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    elif change == "signature_type":
        headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    elif change == "garbage":
        headers["Wechatpay-Signature"] = "not base64!"
    with pytest.raises(SignatureInvalid):
        signing.verify_signed(headers, body, _keys(), NOW)


def test_wechats_signature_probe_is_refused_and_known_for_what_it_is() -> None:
    """WeChat Pay checks that merchants verify callbacks by sending ones signed
    `WECHATPAY/SIGNTEST/…`: refused, and not taken for an attack."""
    body = b'{"trade_state":"SUCCESS"}'
    headers = wechat_headers(body, int(NOW.timestamp()))
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    with pytest.raises(SignatureProbe):
        signing.verify_signed(headers, body, _keys(), NOW)


@pytest.mark.parametrize("missing", ["Wechatpay-Timestamp", "Wechatpay-Serial", "Wechatpay-Nonce"])
def test_a_missing_header_fails_verification(missing: str) -> None:
    body = b"{}"
    headers = wechat_headers(body, int(NOW.timestamp()))
    del headers[missing]
    with pytest.raises(SignatureInvalid, match=missing):
        signing.verify_signed(headers, body, _keys(), NOW)


@pytest.mark.parametrize(
    ("offset_s", "accepted"),
    [(-299, True), (299, True), (-300, False), (300, False), (-3600, False)],
)
def test_timestamps_300_s_or_more_from_the_injected_clock_are_rejected(
    offset_s: int, accepted: bool
) -> None:
    clock = FrozenClock(NOW)
    body = b'{"ok":true}'
    headers = wechat_headers(body, int((NOW + timedelta(seconds=offset_s)).timestamp()))
    if accepted:
        signing.verify_signed(headers, body, _keys(), clock.now())
        return
    with pytest.raises(SignatureInvalid, match="Wechatpay-Timestamp"):
        signing.verify_signed(headers, body, _keys(), clock.now())
    clock.advance(timedelta(seconds=offset_s))  # the same message is fine when it is fresh
    signing.verify_signed(headers, body, _keys(), clock.now())


def test_an_unknown_certificate_serial_refreshes_the_keys_once_within_the_interval() -> None:
    fetched: list[int] = []
    platform = rsa_key("platform").public_key()

    def fetch() -> dict[str, signing.rsa.RSAPublicKey]:
        fetched.append(1)
        return {"5157F09EFDC096DE15EBE81A47057A7232F1B8E1": platform}

    moments = iter([100.0, 130.0, 200.0])
    keys = signing.PlatformKeys(
        {}, fetch, min_refresh_interval_s=60, monotonic=lambda: next(moments)
    )
    assert keys.get("05157f09efdc096de15ebe81a47057a7232f1b8e1") is platform  # t=100: fetch
    assert keys.get("5157F09EFDC096DE15EBE81A47057A7232F1B8E1") is platform  # known: no fetch
    assert keys.get("AAAA") is None  # t=130: too soon to fetch again
    assert keys.get(PUBLIC_KEY_ID) is None  # public-key ids are never fetched
    assert keys.get("BBBB") is None  # t=200: fetched again, still unknown
    assert len(fetched) == 2


def test_lookups_during_a_fetch_wait_for_it_instead_of_failing() -> None:
    platform = rsa_key("platform").public_key()
    release = threading.Event()
    fetched: list[int] = []

    def slow_fetch() -> dict[str, signing.rsa.RSAPublicKey]:
        fetched.append(1)
        release.wait(5)
        return {"ABCDEF": platform}

    keys = signing.PlatformKeys({}, slow_fetch)
    with ThreadPoolExecutor(max_workers=8) as pool:
        lookups = [pool.submit(keys.get, "ABCDEF") for _ in range(8)]
        time.sleep(0.05)
        release.set()
        assert all(lookup.result(timeout=5) is platform for lookup in lookups)
    assert len(fetched) == 1


# AEAD_AES_256_GCM ------------------------------------------------------------------------------


def test_aes_gcm_decryption_agrees_with_wechatpayv3() -> None:
    plaintext = json.dumps(material.transaction(), ensure_ascii=False).encode()
    sealed = AESGCM(APIV3_KEY.encode()).encrypt(b"0123456789ab", plaintext, b"transaction")
    ciphertext = base64.b64encode(sealed).decode()
    ours = signing.aead_decrypt(APIV3_KEY.encode(), "0123456789ab", "transaction", ciphertext)
    theirs = v3.aes_decrypt("0123456789ab", ciphertext, "transaction", APIV3_KEY)
    assert ours.decode() == theirs
    assert json.loads(ours)["out_trade_no"] == material.transaction()["out_trade_no"]


@pytest.mark.parametrize("change", ["ciphertext", "associated_data", "key", "nonce"])
def test_an_altered_resource_does_not_decrypt(change: str) -> None:
    sealed = AESGCM(APIV3_KEY.encode()).encrypt(b"0123456789ab", b'{"a":1}', b"transaction")
    if change == "ciphertext":
        sealed = bytes([sealed[0] ^ 1]) + sealed[1:]
    ciphertext = base64.b64encode(sealed).decode()
    key = (b"b" * 32) if change == "key" else APIV3_KEY.encode()
    aad = "refund" if change == "associated_data" else "transaction"
    nonce = "0123456789ac" if change == "nonce" else "0123456789ab"
    with pytest.raises(SignatureInvalid):
        signing.aead_decrypt(key, nonce, aad, ciphertext)


def test_the_apiv3_key_must_be_32_bytes() -> None:
    assert signing.check_apiv3_key(APIV3_KEY) == APIV3_KEY.encode()
    with pytest.raises(ValueError, match="32 bytes"):
        signing.check_apiv3_key("short")


# Key formats -----------------------------------------------------------------------------------


def test_keys_load_from_pkcs1_pkcs8_and_bare_base64() -> None:
    key = rsa_key("merchant")
    pkcs8 = material.private_pem(key)
    bare = "".join(pkcs8.strip().splitlines()[1:-1])
    for text in (pkcs8, bare):
        assert signing.load_private_key(text).private_numbers() == key.private_numbers()
    spki = material.public_pem(key)
    bare_public = "".join(spki.strip().splitlines()[1:-1])
    for text in (spki, bare_public):
        assert signing.load_public_key(text).public_numbers() == key.public_key().public_numbers()
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert signing.load_public_key(base64.b64encode(der).decode()).key_size == 2048
    with pytest.raises(ValueError, match="neither PEM nor base64"):
        signing.load_private_key("not a key!")
