"""PayPal webhook signatures, checked offline (PROTOCOLS.md §5).

PayPal signs `<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw body,
unsigned decimal>` with SHA256withRSA (PKCS#1 v1.5) and names the certificate holding the
key in PAYPAL-CERT-URL. knowpay fetches that certificate only from configured hosts
(PayPal's own, `*.paypal.com`, over HTTPS), keeps it while it is valid, and puts its own
webhook id into the message: an event meant for another webhook does not verify."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import threading
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from knowpay.channels.errors import SignatureInvalid

AUTH_ALGO = "SHA256withRSA"
_LOOPBACK_NAMES = frozenset({"localhost"})
MAX_CACHED_CERTIFICATES = 32


def crc32_decimal(body: bytes) -> str:
    """The CRC32 of the raw body as PayPal writes it: an unsigned decimal."""
    return str(zlib.crc32(body) & 0xFFFFFFFF)


def transmission_message(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    """What PayPal signed for one transmission of one event to one webhook."""
    return "|".join((transmission_id, transmission_time, webhook_id, crc32_decimal(body))).encode(
        "utf-8"
    )


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cert_url_allowed(url: str, hosts: Sequence[str]) -> bool:
    """Whether PAYPAL-CERT-URL names an allowed host: HTTPS and a configured host (`*.x`
    matches x's subdomains, `host:port` one port); plain HTTP only to a loopback host."""
    try:
        parsed = _url_parts(url)
    except ValueError:
        return False
    scheme, host, port = parsed
    if scheme != "https" and not (scheme == "http" and _is_loopback(host)):
        return False
    for entry in hosts:
        entry = entry.strip().lower()
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif ":" in entry:
            if entry == f"{host}:{port}":
                return True
        elif entry == host:
            return True
    return False


def _url_parts(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of an absolute URL without credentials; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in a certificate URL")
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("not an absolute http(s) URL")
    return parts.scheme, host, parts.port


def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise SignatureInvalid(f"PAYPAL-CERT-URL does not hold a PEM certificate: {exc}") from exc


def check_validity(certificate: x509.Certificate, now: datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureInvalid(
            "the signing certificate is not valid now "
            f"({certificate.not_valid_before_utc:%Y-%m-%d} … "
            f"{certificate.not_valid_after_utc:%Y-%m-%d})"
        )


def verify(certificate: x509.Certificate, message: bytes, signature: str, auth_algo: str) -> bool:
    """True when the certificate's key signed `message` (SHA256withRSA only)."""
    if auth_algo.strip().lower() != AUTH_ALGO.lower():
        return False
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


class CertificateCache:
    """Certificates by URL, fetched once each (bounded; an expired one is fetched again)."""

    def __init__(self, fetch: Callable[[str], bytes]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._certificates: dict[str, x509.Certificate] = {}

    def get(self, url: str, now: datetime) -> x509.Certificate:
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None and cached.not_valid_after_utc >= now:
            return cached
        certificate = load_certificate(self._fetch(url))
        check_validity(certificate, now)
        with self._lock:
            if len(self._certificates) >= MAX_CACHED_CERTIFICATES:
                self._certificates.clear()
            self._certificates[url] = certificate
        return certificate
