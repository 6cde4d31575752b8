"""The simulator's own WeChat Pay v3 cryptography, written apart from the adapter's so that the
two sides cannot share a mistake: it checks merchants' Authorization signatures, signs answers
and callbacks with the platform key, seals resources with AEAD_AES_256_GCM and issues the
platform certificate served by /v3/certificates."""

from __future__ import annotations

import base64
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')
_ALPHANUMERIC = string.ascii_letters + string.digits


def random_string(length: int) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@lru_cache(maxsize=1)
def forger_key() -> rsa.RSAPrivateKey:
    """A key that is not the platform's, for the forged-signature faults (made when first used)."""
    return new_rsa_key()


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def read_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA private key")
    return key


def read_public(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.strip().encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("expected an RSA public key")
    return key


def sign_sha256_rsa(key: rsa.RSAPrivateKey, lines: list[bytes]) -> str:
    """SHA256withRSA over the lines, each followed by a newline; base64."""
    payload = b"".join(line + b"\n" for line in lines)
    return base64.b64encode(key.sign(payload, padding.PKCS1v15(), hashes.SHA256())).decode()


def check_sha256_rsa(key: rsa.RSAPublicKey, lines: list[bytes], signature: str) -> bool:
    payload = b"".join(line + b"\n" for line in lines)
    try:
        key.verify(base64.b64decode(signature), payload, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class MerchantAuthorization:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def parse_authorization(header: str) -> MerchantAuthorization | None:
    """The fields of `WECHATPAY2-SHA256-RSA2048 mchid="…",…` (any order), or None."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        return None
    fields = dict(_AUTH_FIELD.findall(rest))
    try:
        return MerchantAuthorization(
            mchid=fields["mchid"],
            nonce_str=fields["nonce_str"],
            signature=fields["signature"],
            timestamp=fields["timestamp"],
            serial_no=fields["serial_no"],
        )
    except KeyError:
        return None


def seal(apiv3_key: str, plaintext: bytes, associated_data: str) -> dict[str, str]:
    """An AEAD_AES_256_GCM resource as WeChat sends it (12-character nonce)."""
    nonce = random_string(12)
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def platform_certificate(key: rsa.RSAPrivateKey, serial_hex: str) -> x509.Certificate:
    """A self-issued platform certificate for the key, with the given serial."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenpay.com (knowpay sandbox)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA sandbox"),
        ]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(serial_hex, 16))
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * 5))
        .sign(key, hashes.SHA256())
    )


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
