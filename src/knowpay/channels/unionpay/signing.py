"""UnionPay ACP 5.1.0 signatures, signMethod 01 (PROTOCOLS.md section 3).

- Signing: every field but `signature`, sorted by name, `k=v` joined with `&`, raw values;
  the lower-case hex of SHA-256 over that string's UTF-8 bytes is what SHA256withRSA
  (PKCS#1 v1.5) signs; `signature` is the standard base64 of the result. `certId`, the
  decimal serial of the merchant's signing certificate, is set before signing.
- Verifying (responses and notifications): the message carries UnionPay's signing
  certificate as `signPubKeyCert`. It must chain to the configured root through the
  configured middle certificate, be within its validity at our clock's time, and name
  UnionPay as its owner; then its key must verify `signature` over the message as received.

The owner check follows the official SDK (`CertUtil.getIdentitiesFromCertficate`): UnionPay's
certificates carry a CN such as `041@Z12…@中国银联股份有限公司@00000001`, and the owner is its
third `@`-separated part. A CN without `@` is compared whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from knowpay.channels.errors import SignatureInvalid

SIGN_METHOD = "01"
"""RSA with a certificate (11 is SHA-256 with a secure key, 12 SM3: not supported)."""
VERSION = "5.1.0"
SIGNATURE_FIELD = "signature"
CERT_FIELD = "signPubKeyCert"


class UnionPayKeyError(ValueError):
    """A key or certificate that cannot be used."""


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The merchant's signing key: PEM, PKCS#1 or PKCS#8 (export it from the .pfx)."""
    try:
        key: Any = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise UnionPayKeyError(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnionPayKeyError("signMethod 01 needs an RSA private key")
    return key


def load_certificate(text: str) -> x509.Certificate:
    """A PEM certificate (as in settings, or as UnionPay sends it in signPubKeyCert)."""
    try:
        return x509.load_pem_x509_certificate(text.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise UnionPayKeyError(f"not a PEM certificate: {exc}") from exc


def cert_id(certificate: x509.Certificate) -> str:
    """The `certId` UnionPay knows a certificate by: its serial number in decimal."""
    return str(certificate.serial_number)


def signing_string(params: Mapping[str, str]) -> str:
    """`k=v&…` over every field but `signature`, sorted by name, values as they are."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key != SIGNATURE_FIELD)


def digest_hex(content: str) -> str:
    """What 5.1.0 signs: the lower-case hex SHA-256 of the signing string."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def sign(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    """The base64 `signature` of a message (its `certId` already set)."""
    digest = digest_hex(signing_string(params)).encode("ascii")
    return base64.b64encode(key.sign(digest, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def sign_params(
    params: Mapping[str, str], key: rsa.RSAPrivateKey, certificate_id: str
) -> dict[str, str]:
    """The request with `certId` and `signature` added; empty fields are left out, as the
    official SDK's `filterBlank` leaves them out before signing."""
    signed = {name: value for name, value in params.items() if value != ""}
    signed["certId"] = certificate_id
    signed[SIGNATURE_FIELD] = sign(signed, key)
    return signed


def verify_signature(params: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """True when `signature` is the key's 5.1.0 signature of the message as received.

    The SDK's check keeps empty fields; its notification demo drops them before checking.
    UnionPay sends none, and either form must verify."""
    encoded = params.get(SIGNATURE_FIELD, "")
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    kept = signing_string(params)
    dropped = signing_string({k: v for k, v in params.items() if v != ""})
    for content in dict.fromkeys((kept, dropped)):
        try:
            public_key.verify(
                raw, digest_hex(content).encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            continue
        return True
    return False


def owner(certificate: x509.Certificate) -> str:
    """The owner a UnionPay certificate names: the third `@` part of its CN, as the official
    SDK reads it (`CertUtil.getIdentitiesFromCertficate`); a CN of fewer parts names none."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return ""
    common_name = names[0].value
    text = common_name if isinstance(common_name, str) else common_name.decode("utf-8", "replace")
    parts = text.split("@")
    return parts[2] if len(parts) > 2 else ""


@dataclass(frozen=True, slots=True)
class _Trusted:
    public_key: rsa.RSAPublicKey
    valid_from: datetime
    valid_until: datetime


class CertificateVerifier:
    """Checks the signPubKeyCert of each message and verifies its signature.

    The chain is checked with `cryptography.x509.verification`: the root is the only trust
    anchor and the middle certificate the only intermediate offered; the path must be
    leaf → middle → root. Its web-PKI profile demands extensions (SAN, AKI, EKU) CFCA-issued
    UnionPay certificates need not carry, so the end-entity policy permits any extensions
    and the CA policy asks only for basicConstraints (cA asserted is still enforced). A
    certificate that passed is remembered with the validity window the whole chain shares,
    and that window is checked again at every use."""

    def __init__(
        self,
        root: x509.Certificate,
        middle: x509.Certificate,
        expected_owner: str,
        *,
        cache_size: int = 16,
    ) -> None:
        self._root = root
        self._middle = middle
        self._expected_owner = expected_owner
        self._cache: dict[str, _Trusted] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._ca_policy = ExtensionPolicy.permit_all().require_present(
            x509.BasicConstraints, Criticality.AGNOSTIC, None
        )

    def verify(self, params: Mapping[str, str], at: datetime) -> None:
        """SignatureInvalid unless the message is signed by a UnionPay certificate valid now."""
        if params.get("signMethod") != SIGN_METHOD:
            raise SignatureInvalid(f"signMethod {params.get('signMethod')!r} is not 01")
        if params.get("version") != VERSION:
            raise SignatureInvalid(f"version {params.get('version')!r} is not {VERSION}")
        if not params.get(SIGNATURE_FIELD):
            raise SignatureInvalid("the message carries no signature")
        pem = params.get(CERT_FIELD)
        if not pem:
            raise SignatureInvalid("the message carries no signPubKeyCert")
        trusted = self._trusted(pem, at)
        if not trusted.valid_from <= at <= trusted.valid_until:
            raise SignatureInvalid("signPubKeyCert is not valid at this time")
        if not verify_signature(params, trusted.public_key):
            raise SignatureInvalid("the signature does not verify with signPubKeyCert")

    def _trusted(self, pem: str, at: datetime) -> _Trusted:
        with self._lock:
            found = self._cache.get(pem)
        if found is not None:
            return found
        trusted = self._check_certificate(pem, at)
        with self._lock:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[pem] = trusted
        return trusted

    def _check_certificate(self, pem: str, at: datetime) -> _Trusted:
        try:
            leaf = load_certificate(pem)
        except UnionPayKeyError as exc:
            raise SignatureInvalid(f"signPubKeyCert: {exc}") from exc
        verifier = (
            PolicyBuilder()
            .store(Store([self._root]))
            .time(at)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            chain = verifier.verify(leaf, [self._middle]).chain
        except VerificationError as exc:
            reason = f"signPubKeyCert does not chain to UnionPay's CA: {exc}"
            raise SignatureInvalid(reason) from exc
        if [c.fingerprint(hashes.SHA256()) for c in chain[1:]] != [
            self._middle.fingerprint(hashes.SHA256()),
            self._root.fingerprint(hashes.SHA256()),
        ]:
            raise SignatureInvalid("signPubKeyCert is not issued through UnionPay's middle CA")
        found_owner = owner(leaf)
        if found_owner != self._expected_owner:
            raise SignatureInvalid(f"signPubKeyCert belongs to {found_owner!r}, not UnionPay")
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureInvalid("signPubKeyCert does not hold an RSA key")
        return _Trusted(
            public_key,
            max(c.not_valid_before_utc for c in chain),
            min(c.not_valid_after_utc for c in chain),
        )
