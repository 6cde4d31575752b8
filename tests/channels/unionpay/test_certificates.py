"""signPubKeyCert: a message is believed only when its certificate chains to the configured
root through the configured middle CA, is valid at the clock's time, and is UnionPay's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from knowpay.channels.errors import SignatureInvalid
from knowpay.channels.unionpay import signing
from tests.channels.unionpay import material
from tests.channels.unionpay.material import NOW

NOTICE = {
    "version": "5.1.0",
    "encoding": "UTF-8",
    "signMethod": "01",
    "txnType": "01",
    "respCode": "00",
    "merId": material.MER_ID,
    "orderId": "payX01jd3k0000000000000000000a",
    "txnAmt": "9900",
    "queryId": "761601011200000012345",
}


def _verifier(expected: str = "中国银联股份有限公司") -> signing.CertificateVerifier:
    trusted = material.hierarchy()
    return signing.CertificateVerifier(trusted.root.cert, trusted.middle.cert, expected)


def _rejected(message: dict[str, str], reason: str, at: object = NOW) -> None:
    with pytest.raises(SignatureInvalid, match=reason):
        _verifier().verify(message, at)  # type: ignore[arg-type]


def test_a_message_signed_with_unionpays_certificate_is_accepted() -> None:
    _verifier().verify(material.from_unionpay(NOTICE), NOW)


def test_the_owner_is_the_third_at_part_of_the_cn_and_a_plain_cn_names_none() -> None:
    """As the official SDK reads it. A plain CN used to be compared whole (found by an
    independent UnionPay implementation: a certificate whose CN was just the name, issued
    under the trusted CAs, settled a payment; the SDK refuses it)."""
    assert signing.owner(material.signing_cert().cert) == "中国银联股份有限公司"
    plain = material.hierarchy().leaf("中国银联股份有限公司", key="plain")
    assert signing.owner(plain.cert) == ""
    with pytest.raises(SignatureInvalid):
        _verifier().verify(material.from_unionpay(NOTICE, plain), NOW)
    test_env = material.hierarchy().leaf("041@Z1@00040000:SIGN@00000001", key="test-env")
    _verifier("00040000:SIGN").verify(material.from_unionpay(NOTICE, test_env), NOW)
    with pytest.raises(SignatureInvalid, match="belongs to '00040000:SIGN'"):
        _verifier().verify(material.from_unionpay(NOTICE, test_env), NOW)


def test_a_certificate_from_another_ca_is_rejected() -> None:
    impostor = material.hierarchy("impostor").leaf(key="impostor")
    _rejected(material.from_unionpay(NOTICE, impostor), "does not chain")


def test_a_certificate_issued_by_the_root_itself_skipping_the_middle_ca_is_rejected() -> None:
    trusted = material.hierarchy()
    direct = material.issue(material.UNIONPAY_CN, material.rsa_key("direct"), trusted.root,
                            ca=False)  # fmt: skip
    _rejected(material.from_unionpay(NOTICE, direct), "middle CA")


def test_an_expired_or_not_yet_valid_certificate_is_rejected() -> None:
    expired = material.hierarchy().leaf(
        key="expired", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1)
    )
    _rejected(material.from_unionpay(NOTICE, expired), "does not chain")
    future = material.hierarchy().leaf(
        key="future", not_before=NOW + timedelta(days=1), not_after=NOW + timedelta(days=400)
    )
    _rejected(material.from_unionpay(NOTICE, future), "does not chain")


def test_validity_is_judged_at_the_injected_clocks_time_even_once_remembered() -> None:
    verifier = _verifier()
    message = material.from_unionpay(NOTICE)
    verifier.verify(message, NOW)  # remembered now
    with pytest.raises(SignatureInvalid, match="not valid at this time"):
        verifier.verify(message, NOW + timedelta(days=366))
    with pytest.raises(SignatureInvalid, match="does not chain"):
        _verifier().verify(message, NOW + timedelta(days=366))


def test_a_certificate_of_unionpays_ca_owned_by_someone_else_is_rejected() -> None:
    someone = material.hierarchy().leaf("041@Z1@某某科技有限公司@00000001", key="someone")
    _rejected(material.from_unionpay(NOTICE, someone), "belongs to '某某科技有限公司'")


def test_a_signature_by_another_key_under_the_genuine_certificate_is_rejected() -> None:
    forged = material.from_unionpay(NOTICE, key=material.rsa_key("stranger"))
    _rejected(forged, "does not verify")


def test_a_message_changed_after_signing_is_rejected() -> None:
    _rejected({**material.from_unionpay(NOTICE), "txnAmt": "1"}, "does not verify")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"signPubKeyCert": ""}, "no signPubKeyCert"),
        ({"signPubKeyCert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
         "signPubKeyCert"),
        ({"signature": ""}, "no signature"),
        ({"signMethod": "11"}, "signMethod"),
        ({"version": "5.0.0"}, "version"),
    ],
)  # fmt: skip
def test_a_message_without_what_5_1_0_needs_is_rejected(
    change: dict[str, str], reason: str
) -> None:
    _rejected({**material.from_unionpay(NOTICE), **change}, reason)
