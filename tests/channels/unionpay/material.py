"""UnionPay test material made here with `cryptography` and `hashlib` alone: a CA hierarchy
like UnionPay's (root → middle → signing certificate), certificates that must be refused,
the merchant's key and certificate, knowpay-style ids for a chosen moment, and the 5.1.0
signature computed straight from the specification's words — so that knowpay's signer and
verifier are checked against an independent reading, not against themselves."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from knowpay.kit.config import UnionPaySettings

MER_ID = "777290058110048"
UNIONPAY_CN = "041@Z12400000000000@中国银联股份有限公司@00000001"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""The tests' clock; certificates are valid from a year before to a year after."""
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


@lru_cache(maxsize=16)
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """A 2048-bit key per name, made once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@dataclass(frozen=True)
class Issued:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return pem(self.cert)


def issue(
    common_name: str,
    key: rsa.RSAPrivateKey,
    issuer: Issued | None,
    *,
    ca: bool,
    not_before: datetime = NOW - timedelta(days=365),
    not_after: datetime = NOW + timedelta(days=365),
    serial: int | None = None,
) -> Issued:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return Issued(key, builder.sign(signer, hashes.SHA256()))


@dataclass(frozen=True)
class Hierarchy:
    root: Issued
    middle: Issued

    def leaf(
        self,
        common_name: str = UNIONPAY_CN,
        key: str = "unionpay",
        *,
        not_before: datetime = NOW - timedelta(days=365),
        not_after: datetime = NOW + timedelta(days=365),
    ) -> Issued:
        return issue(
            common_name,
            rsa_key(key),
            self.middle,
            ca=False,
            not_before=not_before,
            not_after=not_after,
        )


@lru_cache(maxsize=4)
def hierarchy(label: str = "unionpay") -> Hierarchy:
    """A root and a middle CA (label `unionpay` is the trusted one)."""
    decade, lustrum = timedelta(days=3650), timedelta(days=1800)
    root = issue(f"{label} root", rsa_key(f"{label}-root"), None, ca=True,
                 not_before=NOW - decade, not_after=NOW + decade)  # fmt: skip
    middle = issue(f"{label} middle", rsa_key(f"{label}-middle"), root, ca=True,
                   not_before=NOW - lustrum, not_after=NOW + lustrum)  # fmt: skip
    return Hierarchy(root, middle)


@lru_cache(maxsize=1)
def signing_cert() -> Issued:
    """UnionPay's signing certificate, under the trusted middle CA."""
    return hierarchy().leaf()


@lru_cache(maxsize=1)
def merchant() -> Issued:
    """The merchant's signing key and certificate (serial 68759585097 → certId)."""
    return issue("041@777290058110048@merchant@00000001", rsa_key("merchant"), hierarchy().middle,
                 ca=False, serial=68759585097)  # fmt: skip


def settings(**changes: object) -> UnionPaySettings:
    fields: dict[str, object] = {
        "mer_id": MER_ID,
        "sign_private_key": private_pem(merchant().key),
        "sign_cert": merchant().pem,
        "root_cert": hierarchy().root.pem,
        "middle_cert": hierarchy().middle.pem,
        "front_url": "https://gateway.test.95516.com/gateway/api/frontTransReq.do",
        "back_url": "https://gateway.test.95516.com/gateway/api/backTransReq.do",
        "query_url": "https://gateway.test.95516.com/gateway/api/queryTrans.do",
        "timeout_s": 1.0,
    }
    fields.update(changes)
    return UnionPaySettings(**fields)


def knowpay_id(prefix: str, moment: datetime, tail: str = "0000000000000000") -> str:
    """An id in kit/ids.py's layout (10 base32 characters of Unix ms, 16 random) for `moment`."""
    millis = int(moment.timestamp() * 1000)
    chars = []
    for _ in range(10):
        millis, digit = divmod(millis, 32)
        chars.append(_CROCKFORD[digit])
    return f"{prefix}_{''.join(reversed(chars))}{tail}"


def spec_signature(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    """ACP 5.1.0 signMethod 01 as the specification words it: drop `signature`, sort the
    keys, join `key=value` with `&`; SHA-256, lower-case hex; SHA256withRSA over that hex
    text; base64."""
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    hex_digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    raw = key.sign(hex_digest.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def from_unionpay(params: Mapping[str, str], signer: Issued | None = None, *,
                  key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:  # fmt: skip
    """A message as UnionPay sends it: signPubKeyCert set, then signed (by `key` if given)."""
    signer = signer or signing_cert()
    message = dict(params)
    message["signPubKeyCert"] = signer.pem
    message["signature"] = spec_signature(message, key or signer.key)
    return message
