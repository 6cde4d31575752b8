"""Offline webhook verification: the signed message, the certificate's hosts and lifetime,
and the signature — checked against the simulator's signing (written apart from ours) and
against paypalrestsdk's own construction of the message."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from OpenSSL import crypto as openssl
from paypalrestsdk.notifications import WebhookEvent

from knowpay.channels.errors import SignatureInvalid
from knowpay.channels.paypal import signing
from knowpay.sandbox.paypal import crypto as gateway

TRANSMISSION_ID = "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
TRANSMISSION_TIME = "2026-01-01T12:00:00Z"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
BODY = (
    '{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","summary":"Zahlung für Kurs — 课程",'
    '"resource":{"amount":{"currency_code":"EUR","value":"9.90"}}}'
).encode()


@pytest.fixture(scope="module")
def paypal_key() -> tuple[object, x509.Certificate]:
    key = gateway.generate_key()
    return key, gateway.self_signed_certificate(key)


def _signed(key: object, webhook_id: str = WEBHOOK_ID, body: bytes = BODY) -> str:
    message = gateway.message(TRANSMISSION_ID, TRANSMISSION_TIME, webhook_id, body)
    return gateway.sign(message, key)  # type: ignore[arg-type]


def test_the_message_is_id_time_webhook_and_the_unsigned_decimal_crc32() -> None:
    crc = zlib.crc32(BODY) & 0xFFFFFFFF
    expected = f"{TRANSMISSION_ID}|{TRANSMISSION_TIME}|{WEBHOOK_ID}|{crc}".encode()
    assert signing.transmission_message(TRANSMISSION_ID, TRANSMISSION_TIME, WEBHOOK_ID, BODY) == (
        expected
    )
    assert signing.crc32_decimal(b"\xff" * 64).isdigit()  # never negative


def test_paypalrestsdk_builds_the_same_message() -> None:
    """paypalrestsdk's WebhookEvent._get_expected_sig (its offline check's signed string)."""
    sdk = WebhookEvent._get_expected_sig(
        TRANSMISSION_ID, TRANSMISSION_TIME, WEBHOOK_ID, BODY.decode("utf-8")
    )
    ours = signing.transmission_message(TRANSMISSION_ID, TRANSMISSION_TIME, WEBHOOK_ID, BODY)
    assert sdk.encode("utf-8") == ours


def test_the_simulators_signature_verifies_over_the_sdks_message_with_the_served_pem(
    paypal_key: tuple[object, x509.Certificate],
) -> None:
    """Independent parts end to end: the simulator signs, pyOpenSSL (what paypalrestsdk uses)
    reads the PEM the cert URL serves, paypalrestsdk builds the message, knowpay verifies."""
    key, certificate = paypal_key
    pem = gateway.certificate_pem(certificate).encode()
    loaded = openssl.load_certificate(openssl.FILETYPE_PEM, pem).to_cryptography()
    message = WebhookEvent._get_expected_sig(
        TRANSMISSION_ID, TRANSMISSION_TIME, WEBHOOK_ID, BODY.decode("utf-8")
    ).encode("utf-8")
    assert signing.verify(loaded, message, _signed(key), "SHA256withRSA")


def test_offline_verification_accepts_paypals_signature_only(
    paypal_key: tuple[object, x509.Certificate],
) -> None:
    key, certificate = paypal_key
    message = signing.transmission_message(TRANSMISSION_ID, TRANSMISSION_TIME, WEBHOOK_ID, BODY)
    assert signing.verify(certificate, message, _signed(key), "SHA256withRSA")
    assert signing.verify(certificate, message, _signed(key), "sha256withrsa")
    # Another webhook's event, another body, another key, another algorithm: no.
    assert not signing.verify(certificate, message, _signed(key, "WH-OTHER"), "SHA256withRSA")
    assert not signing.verify(certificate, message, _signed(key, body=BODY + b" "), "SHA256withRSA")
    forger = gateway.generate_key()
    assert not signing.verify(certificate, message, _signed(forger), "SHA256withRSA")
    assert not signing.verify(certificate, message, _signed(key), "SHA1withRSA")
    assert not signing.verify(certificate, message, "not base64!", "SHA256withRSA")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.paypal.com/v1/notifications/certs/CERT-360caa42", True),
        ("https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42", True),
        ("https://API.PAYPAL.COM/v1/notifications/certs/CERT-1", True),
        ("http://api.paypal.com/v1/notifications/certs/CERT-1", False),  # not HTTPS
        ("https://paypal.com.evil.example/cert", False),
        ("https://evilpaypal.com/cert", False),
        ("https://api.paypal.com@evil.example/cert", False),  # credentials trick
        ("https://evil.example/api.paypal.com/cert", False),
        ("ftp://api.paypal.com/cert", False),
        ("not a url", False),
        ("http://127.0.0.1:8100/paypal/v1/notifications/certs/CERT-1", False),  # not listed
    ],
)
def test_certificates_come_from_paypals_hosts_only(url: str, allowed: bool) -> None:
    assert signing.cert_url_allowed(url, ["*.paypal.com"]) is allowed


def test_a_listed_loopback_host_and_port_may_serve_over_plain_http() -> None:
    hosts = ["*.paypal.com", "127.0.0.1:8100"]
    assert signing.cert_url_allowed("http://127.0.0.1:8100/paypal/v1/notifications/certs/C", hosts)
    assert not signing.cert_url_allowed("http://127.0.0.1:8101/paypal/certs/C", hosts)
    assert not signing.cert_url_allowed("http://sandbox.example:8100/certs/C", ["sandbox.example"])


def test_certificates_are_fetched_once_and_again_when_expired(
    paypal_key: tuple[object, x509.Certificate],
) -> None:
    _, certificate = paypal_key
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return gateway.certificate_pem(certificate).encode()

    cache = signing.CertificateCache(fetch)
    now = datetime.now(UTC)
    assert cache.get("https://api.paypal.com/c/1", now) == certificate
    assert cache.get("https://api.paypal.com/c/1", now + timedelta(days=1)) == certificate
    assert fetched == ["https://api.paypal.com/c/1"]
    with pytest.raises(SignatureInvalid, match="not valid now"):
        cache.get("https://api.paypal.com/c/1", now + timedelta(days=400))
    assert len(fetched) == 2


def test_something_that_is_not_a_certificate_is_a_signature_failure() -> None:
    cache = signing.CertificateCache(lambda _url: b"<html>hello</html>")
    with pytest.raises(SignatureInvalid, match="PEM"):
        cache.get("https://api.paypal.com/c/2", datetime.now(UTC))
