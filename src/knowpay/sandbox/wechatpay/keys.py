"""The simulator's identities and keys, from `SandboxConfig.gateways["wechatpay"]` or generated.

Recognised entries (all optional): `mchid`, `appid`, `apiv3_key` (32 characters),
`merchant_public_key` (PEM; the merchant's API key, to check Authorization signatures),
`merchant_serial_no`, `merchant_private_key` (only to hand back to a demo that asked us to
generate it), `platform_private_key` (PEM), `platform_serial` (`PUB_KEY_ID_…` in public-key
mode, hex in certificate mode), `key_mode` (`public_key`, the default, or `certificate`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from knowpay.sandbox.wechatpay import crypto

DEFAULT_MCHID = "1900000109"
DEFAULT_APPID = "wxd678efh567hg6787"


@dataclass(frozen=True)
class SimulatorKeys:
    mchid: str
    appid: str
    apiv3_key: str
    merchant_public_key: rsa.RSAPublicKey
    merchant_serial_no: str | None
    """When set, an Authorization with another serial_no is refused."""
    merchant_private_pem: str | None
    """Set only when the simulator generated the merchant key (for `knowpay demo`)."""
    platform_key: rsa.RSAPrivateKey
    key_mode: str
    signing_serial: str
    """The Wechatpay-Serial on everything we sign: PUB_KEY_ID_… or the certificate's serial."""
    public_key_id: str
    certificate: x509.Certificate

    def public_parts(self) -> dict[str, Any]:
        """What a merchant needs to talk to this simulator (GET /wechatpay/_keys)."""
        parts: dict[str, Any] = {
            "mchid": self.mchid,
            "appid": self.appid,
            "apiv3_key": self.apiv3_key,
            "merchant_serial_no": self.merchant_serial_no,
            "merchant_public_key": crypto.public_pem(self.merchant_public_key),
            "key_mode": self.key_mode,
            "platform_serial_no": self.signing_serial,
            "platform_public_key": crypto.public_pem(self.platform_key.public_key()),
            "platform_certificate": crypto.certificate_pem(self.certificate),
        }
        if self.merchant_private_pem is not None:
            parts["merchant_private_key"] = self.merchant_private_pem
        return parts


def _certificate_serial() -> str:
    """A positive serial below 2**159, as X.509 requires, in upper-case hex (40 digits)."""
    return format(secrets.randbits(155) | (1 << 155), "X")


def _public_key_id(mchid: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return f"PUB_KEY_ID_01{mchid}{stamp}{secrets.randbelow(10**12):012d}"


def load_keys(section: dict[str, str] | None) -> SimulatorKeys:
    """Keys from the config section, generating whatever is missing."""
    entries = dict(section or {})
    mchid = entries.get("mchid") or DEFAULT_MCHID
    apiv3_key = entries.get("apiv3_key") or crypto.random_string(32)
    if len(apiv3_key.encode()) != 32:
        raise ValueError("the sandbox's wechatpay apiv3_key must be 32 bytes")
    merchant_private_pem: str | None = None
    merchant_serial_no = entries.get("merchant_serial_no") or None
    if entries.get("merchant_public_key"):
        merchant_public = crypto.read_public(entries["merchant_public_key"])
    else:
        generated = crypto.new_rsa_key()
        merchant_private_pem = crypto.private_pem(generated)
        merchant_public = generated.public_key()
        merchant_serial_no = merchant_serial_no or secrets.token_hex(20).upper()
    platform_key = (
        crypto.read_private(entries["platform_private_key"])
        if entries.get("platform_private_key")
        else crypto.new_rsa_key()
    )
    key_mode = entries.get("key_mode") or "public_key"
    if key_mode not in ("public_key", "certificate"):
        raise ValueError("key_mode must be public_key or certificate")
    serial = entries.get("platform_serial") or ""
    if key_mode == "certificate":
        cert_serial = serial or _certificate_serial()
        public_key_id = _public_key_id(mchid)
        signing_serial = cert_serial
    else:
        public_key_id = serial or _public_key_id(mchid)
        cert_serial = _certificate_serial()
        signing_serial = public_key_id
    return SimulatorKeys(
        mchid=mchid,
        appid=entries.get("appid") or DEFAULT_APPID,
        apiv3_key=apiv3_key,
        merchant_public_key=merchant_public,
        merchant_serial_no=merchant_serial_no,
        merchant_private_pem=merchant_private_pem,
        platform_key=platform_key,
        key_mode=key_mode,
        signing_serial=signing_serial,
        public_key_id=public_key_id,
        certificate=crypto.platform_certificate(platform_key, cert_serial),
    )
