"""PayPal's side of webhook signatures: a signing key with a self-signed X.509 certificate
(served at the cert URL), and the SHA256withRSA signature over
`transmission_id|transmission_time|webhook_id|crc32(body)`.

Written apart from knowpay's channel code on purpose (the sandbox imports nothing from
knowpay), so that one misreading of the protocol cannot hide on both sides."""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

AUTH_ALGO = "SHA256withRSA"
CERT_CN = "messageverificationcerts.sandbox.knowpay.invalid"
"""Not PayPal's name: the simulator does not pretend to hold PayPal's certificate."""


def generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_certificate(key: rsa.RSAPrivateKey, *, days: int = 365) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "knowpay sandbox (PayPal simulator)"),
            x509.NameAttribute(NameOID.COMMON_NAME, CERT_CN),
        ]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def crc32(body: bytes) -> int:
    return zlib.crc32(body) & 0xFFFFFFFF


def message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32(body)}".encode()


def sign(data: bytes, key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(data: bytes, signature: str, certificate: x509.Certificate) -> bool:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(
            base64.b64decode(signature, validate=True), data, padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
