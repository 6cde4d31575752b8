"""The simulated UnionPay's certificates: a root CA, a middle CA under it, UnionPay's signing
certificate under the middle one (its CN names 中国银联股份有限公司 the way UnionPay's do:
`041@Z…@中国银联股份有限公司@00000001`, the owner being the third `@` part), and, when the
merchant brought none, a merchant key with its certificate (its serial is the certId).

The certificates a fault needs — one from a CA nobody trusts, an expired one, one owned by
someone else — are made on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

UNIONPAY_OWNER = "中国银联股份有限公司"
SIGNING_CN = f"041@Z12400000000000@{UNIONPAY_OWNER}@00000001"


@dataclass(frozen=True)
class Identity:
    """A key and the certificate that names it."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def serial(self) -> str:
        return str(self.cert.serial_number)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: Identity | None,
    *,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
) -> Identity:
    """A certificate for `key`, signed by `issuer` (self-signed when None)."""
    issuer_name = issuer.cert.subject if issuer else subject
    signer = issuer.key if issuer else key
    usage = x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    return Identity(key, builder.sign(signer, hashes.SHA256()))


class Authority:
    """One CA hierarchy: root → middle → leaves."""

    def __init__(self, label: str) -> None:
        now = datetime.now(UTC)
        self.root = _issue(
            _name(f"{label} Root CA", "China UnionPay Sandbox"),
            new_key(),
            None,
            ca=True,
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=3650),
        )
        self.middle = _issue(
            _name(f"{label} Middle CA", "China UnionPay Sandbox"),
            new_key(),
            self.root,
            ca=True,
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=1825),
        )

    def leaf(self, common_name: str, *, expired: bool = False) -> Identity:
        now = datetime.now(UTC)
        start, end = (
            (now - timedelta(days=400), now - timedelta(days=35))
            if expired
            else (now - timedelta(days=1), now + timedelta(days=365))
        )
        return _issue(
            _name(common_name, "China UnionPay"),
            new_key(),
            self.middle,
            ca=False,
            not_before=start,
            not_after=end,
        )


class Pki:
    """The simulator's trusted hierarchy and signing certificate, and the faulty ones."""

    def __init__(self) -> None:
        self.authority = Authority("UnionPay Sandbox")
        self.signing = self.authority.leaf(SIGNING_CN)
        self._lock = threading.Lock()
        self._faulty: dict[str, Identity] = {}

    def merchant(self, mer_id: str) -> Identity:
        """A merchant signing key and certificate (the sandbox console's .pfx, as PEM)."""
        return self.authority.leaf(f"041@{mer_id}@sandbox merchant@00000001")

    def faulty(self, kind: str) -> Identity:
        """`untrusted_cert`: right owner, unknown CA; `expired_cert`; `wrong_cn`: right CA,
        another owner; `forged_signature`: a key that is not the certificate's."""
        with self._lock:
            found = self._faulty.get(kind)
            if found is None:
                found = self._faulty[kind] = self._make(kind)
            return found

    def _make(self, kind: str) -> Identity:
        if kind == "untrusted_cert":
            return Authority("Impostor").leaf(SIGNING_CN)
        if kind == "expired_cert":
            return self.authority.leaf(SIGNING_CN, expired=True)
        if kind == "wrong_cn":
            return self.authority.leaf("041@Z12400000000000@某某科技有限公司@00000001")
        if kind == "forged_signature":
            return Identity(new_key(), self.signing.cert)
        raise ValueError(f"no faulty identity {kind!r}")


def load_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.strip().encode("ascii"))
