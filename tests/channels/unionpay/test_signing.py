"""ACP 5.1.0 signMethod 01: the signing string and digest of a front consume as the
specification describes them (PROTOCOLS.md section 3), and knowpay's signer checked against
the signature computed independently here (PKCS#1 v1.5 is deterministic), both ways."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from knowpay.channels.unionpay import signing
from knowpay.channels.unionpay.client import UnionPayClient
from knowpay.kit.clock import FrozenClock
from knowpay.sandbox.unionpay import crypto as gateway_crypto
from tests.channels.unionpay import material

FRONT_CONSUME = {
    "version": "5.1.0",
    "encoding": "UTF-8",
    "certId": "68759585097",
    "signMethod": "01",
    "txnType": "01",
    "txnSubType": "01",
    "bizType": "000201",
    "channelType": "07",
    "accessType": "0",
    "merId": "777290058110048",
    "orderId": "payX01jd3k0000000000000000000a",
    "txnTime": "20260101200000",
    "txnAmt": "1000",
    "currencyCode": "156",
    "payTimeout": "20260101201500",
    "frontUrl": "http://localhost:8080/ACPSample_B2C/frontRcvResponse",
    "backUrl": "http://222.222.222.222:8080/ACPSample_B2C/backRcvResponse",
    "riskRateInfo": "{commodityName=测试商品名称}",
    "signature": "whatever was there before is not signed",
}
# Written out by hand from the rule: no `signature`, keys in ASCII order, raw values.
SIGNING_STRING = (
    "accessType=0&backUrl=http://222.222.222.222:8080/ACPSample_B2C/backRcvResponse"
    "&bizType=000201&certId=68759585097&channelType=07&currencyCode=156&encoding=UTF-8"
    "&frontUrl=http://localhost:8080/ACPSample_B2C/frontRcvResponse&merId=777290058110048"
    "&orderId=payX01jd3k0000000000000000000a&payTimeout=20260101201500"
    "&riskRateInfo={commodityName=测试商品名称}&signMethod=01&txnAmt=1000&txnSubType=01"
    "&txnTime=20260101200000&txnType=01&version=5.1.0"
)
# hashlib.sha256(SIGNING_STRING.encode("utf-8")).hexdigest(), computed once and pinned.
DIGEST_HEX = "0c70e696439c683759985b0c5b995429a1ca85372f405c14d49407aabfe0dd9f"


def test_the_signing_string_and_digest_follow_the_specification() -> None:
    assert signing.signing_string(FRONT_CONSUME) == SIGNING_STRING
    assert hashlib.sha256(SIGNING_STRING.encode("utf-8")).hexdigest() == DIGEST_HEX
    assert signing.digest_hex(SIGNING_STRING) == DIGEST_HEX


def test_the_signature_is_sha256withrsa_over_the_hex_digest_not_the_text() -> None:
    key = material.rsa_key("merchant")
    ours = signing.sign(FRONT_CONSUME, key)
    expected = key.sign(DIGEST_HEX.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    assert base64.b64decode(ours) == expected
    assert ours == material.spec_signature(FRONT_CONSUME, key)
    over_text = key.sign(SIGNING_STRING.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert base64.b64decode(ours) != over_text  # the 5.0.0-style mistake is not made


def test_a_request_carries_the_certificate_serial_as_cert_id_and_a_signature_over_it() -> None:
    client = UnionPayClient(material.settings(), FrozenClock(material.NOW))
    assert client.cert_id == "68759585097"  # the merchant certificate's serial, in decimal
    fields = client.fields("00", "00", orderId="payX01jd3k0000000000000000000a", txnTime="")
    assert "txnTime" not in fields  # empty fields are not sent (the SDK's filterBlank)
    signed = client.sign(fields)
    assert signed["certId"] == "68759585097"
    assert signed["signature"] == material.spec_signature(signed, material.merchant().key)
    # The simulator's independent check accepts it too.
    assert gateway_crypto.verify(signed, material.merchant().key.public_key())


def test_cert_id_can_be_configured_instead_of_derived() -> None:
    client = UnionPayClient(
        material.settings(sign_cert=None, sign_cert_id="12345"), FrozenClock(material.NOW)
    )
    assert client.sign(client.fields("00", "00"))["certId"] == "12345"


def test_verification_accepts_the_independent_signature_and_nothing_else() -> None:
    message = material.from_unionpay({**FRONT_CONSUME, "respCode": "00"})
    public = material.signing_cert().key.public_key()
    assert signing.verify_signature(message, public)
    for name, value in [("txnAmt", "1"), ("respCode", "01"), ("extra", "x")]:
        assert not signing.verify_signature({**message, name: value}, public)
    assert not signing.verify_signature({**message, "signature": "bm90IGJhc2U2NA=="}, public)
    assert not signing.verify_signature({**message, "signature": "%%%"}, public)
    other = material.rsa_key("stranger").public_key()
    assert not signing.verify_signature(message, other)


def test_the_simulators_signature_verifies_with_knowpays_check() -> None:
    message = {**FRONT_CONSUME, "signPubKeyCert": material.signing_cert().pem}
    message["signature"] = gateway_crypto.sign(message, material.signing_cert().key)
    assert signing.verify_signature(message, material.signing_cert().key.public_key())
