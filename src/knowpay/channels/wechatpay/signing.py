"""WeChat Pay API v3 cryptography: request signatures, response and callback verification,
AEAD_AES_256_GCM decryption, and the JS-call paySign (PROTOCOLS.md §2.2-2.4).

Signatures are SHA256withRSA (PKCS#1 v1.5), base64. A request signs
`METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`; a response or callback is verified over
`TIMESTAMP\\nNONCE\\nBODY\\n` with the platform key named by `Wechatpay-Serial`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from knowpay.channels.errors import SignatureInvalid, SignatureProbe

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
TIMESTAMP_TOLERANCE_S = 300
"""A response or callback whose timestamp is this far from our clock (or farther) is refused."""
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
PROBE_SIGNATURE_PREFIX = "WECHATPAY/SIGNTEST/"
"""WeChat's probe traffic carries signatures like this; they must never verify."""
APIV3_KEY_BYTES = 32
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


# Keys ----------------------------------------------------------------------------------------


def _pem_or_der(text: str, kind: str) -> tuple[bytes, bool]:
    stripped = text.strip()
    if "-----BEGIN" in stripped:
        return stripped.encode(), True
    try:
        return base64.b64decode("".join(stripped.split()), validate=True), False
    except binascii.Error as exc:
        raise ValueError(f"the {kind} is neither PEM nor base64 DER") from exc


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or a bare base64 PKCS#8 body."""
    data, is_pem = _pem_or_der(text, "merchant private key")
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if is_pem
            else serialization.load_der_private_key(data, password=None)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"cannot read the merchant private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant private key is not an RSA key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from a PUBLIC KEY PEM, a CERTIFICATE PEM or a bare base64 SPKI body."""
    data, is_pem = _pem_or_der(text, "platform public key")
    key: object
    try:
        if is_pem and b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        elif is_pem:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"cannot read the platform public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the platform public key is not an RSA key")
    return key


def certificate_serial(certificate: x509.Certificate) -> str:
    """A certificate's serial as WeChat writes it: upper-case hex."""
    return format(certificate.serial_number, "X")


def normalize_serial(serial: str) -> str:
    """Public-key ids as they are; certificate serials compared as hex numbers."""
    serial = serial.strip()
    if serial.startswith(PUBLIC_KEY_ID_PREFIX):
        return serial
    return serial.upper().lstrip("0") or "0"


def new_nonce() -> str:
    """A 32-character random string for nonce_str / nonceStr."""
    return secrets.token_hex(16).upper()


# Signatures ----------------------------------------------------------------------------------


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The five lines a merchant signs; `url` is path plus `?query`, without the host."""
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The three lines WeChat signs for a response or a callback."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    if signature.startswith(PROBE_SIGNATURE_PREFIX):
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def authorization(mchid: str, serial_no: str, nonce: str, timestamp: str, signature: str) -> str:
    """The Authorization header value of a signed request."""
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def js_pay_sign(
    private_key: rsa.RSAPrivateKey, appid: str, timestamp: str, nonce: str, package: str
) -> str:
    """paySign of the JSAPI / mini-program call: four lines, each ending in a newline."""
    return rsa_sign(private_key, f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode())


def timestamp_is_fresh(timestamp: str, now: datetime) -> bool:
    """Whether a Wechatpay-Timestamp (seconds) lies within the tolerance of `now`."""
    if not _TIMESTAMP.fullmatch(timestamp):  # not str.isdigit(): it takes "²", int() does not
        return False
    return abs(int(now.timestamp()) - int(timestamp)) < TIMESTAMP_TOLERANCE_S


# AEAD_AES_256_GCM ----------------------------------------------------------------------------


def check_apiv3_key(apiv3_key: str) -> bytes:
    key = apiv3_key.encode()
    if len(key) != APIV3_KEY_BYTES:
        raise ValueError(f"the API v3 key must be {APIV3_KEY_BYTES} bytes, not {len(key)}")
    return key


def aead_decrypt(key: bytes, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    """Open a callback resource or an encrypted certificate; SignatureInvalid if it was altered
    or sealed with another key."""
    try:
        data = base64.b64decode(ciphertext, validate=True)
        return AESGCM(key).decrypt(nonce.encode(), data, associated_data.encode())
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise SignatureInvalid("the encrypted resource does not open with our API v3 key") from exc


# Verifying what WeChat sends -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    timestamp: str
    nonce: str
    signature: str
    serial: str
    signature_type: str | None


def signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The Wechatpay-* headers, found case-insensitively; SignatureInvalid if one is missing."""
    lower = {key.lower(): value for key, value in headers.items()}
    values = {}
    for name in ("timestamp", "nonce", "signature", "serial"):
        value = lower.get(f"wechatpay-{name}", "").strip()
        if not value:
            raise SignatureInvalid(f"the Wechatpay-{name.capitalize()} header is missing")
        values[name] = value
    return SignedHeaders(signature_type=lower.get("wechatpay-signature-type"), **values)


KeyFetcher = Callable[[], dict[str, rsa.RSAPublicKey]]


class PlatformKeys:
    """WeChat's verification keys by serial: the configured public key (`PUB_KEY_ID_…`) or
    pinned certificate, plus platform certificates fetched when an unknown serial appears."""

    def __init__(
        self,
        known: Mapping[str, rsa.RSAPublicKey],
        fetch: KeyFetcher | None = None,
        *,
        min_refresh_interval_s: float = 60.0,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._keys = {normalize_serial(serial): key for serial, key in known.items()}
        self._fetch = fetch
        self._min_interval_s = min_refresh_interval_s
        self._last_refresh: float | None = None
        self._lock = threading.Lock()
        self._fetching = threading.Lock()  # one fetch at a time; latecomers wait for its keys
        self._monotonic = monotonic or time.monotonic

    def get(self, serial: str) -> rsa.RSAPublicKey | None:
        """The key for a serial, refreshing certificates once (rate-limited) when unknown."""
        wanted = normalize_serial(serial)
        with self._lock:
            key = self._keys.get(wanted)
        if key is not None or self._fetch is None or wanted.startswith(PUBLIC_KEY_ID_PREFIX):
            return key
        with self._fetching:
            with self._lock:
                key = self._keys.get(wanted)
                if key is not None:
                    return key  # fetched while this thread waited
                now = self._monotonic()
                last = self._last_refresh
                if last is not None and now - last < self._min_interval_s:
                    return None
                self._last_refresh = now
            fetched = self._fetch()
            with self._lock:
                self._keys.update({normalize_serial(s): k for s, k in fetched.items()})
                return self._keys.get(wanted)


def verify_signed(
    headers: Mapping[str, str], body: bytes, keys: PlatformKeys, now: datetime
) -> SignedHeaders:
    """Check a response or callback: freshness, the serial's key and the signature over the raw
    body. SignatureInvalid with the reason when anything is off."""
    signed = signed_headers(headers)
    if signed.signature.startswith(PROBE_SIGNATURE_PREFIX):
        raise SignatureProbe("WeChat Pay's signature probe (WECHATPAY/SIGNTEST/…), refused")
    if signed.signature_type is not None and signed.signature_type.strip() != SCHEMA:
        raise SignatureInvalid(f"unsupported Wechatpay-Signature-Type {signed.signature_type!r}")
    if not timestamp_is_fresh(signed.timestamp, now):
        raise SignatureInvalid(
            f"Wechatpay-Timestamp {signed.timestamp} is not within "
            f"{TIMESTAMP_TOLERANCE_S} s of now ({int(now.timestamp())})"
        )
    key = keys.get(signed.serial)
    if key is None:
        raise SignatureInvalid(f"no platform key with serial {signed.serial!r}")
    message = response_message(signed.timestamp, signed.nonce, body)
    if not rsa_verify(key, message, signed.signature):
        raise SignatureInvalid("the Wechatpay-Signature does not verify")
    return signed
