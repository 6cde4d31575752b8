"""The gateway side of ACP 5.1.0's signMethod 01: check what merchants sign, sign what
UnionPay sends. Written apart from knowpay's channel code (the sandbox imports nothing from
knowpay), so that one misreading of the protocol cannot hide on both sides."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def content(params: Mapping[str, str]) -> str:
    """The signed text: all fields but `signature`, sorted by name, `name=value` with `&`."""
    return "&".join(name + "=" + params[name] for name in sorted(params) if name != "signature")


def _digest(params: Mapping[str, str]) -> bytes:
    """5.1.0 signs the hex (lower case) of SHA-256 over the text, not the text itself."""
    return hashlib.sha256(content(params).encode("utf-8")).hexdigest().encode("ascii")


def sign(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    raw = key.sign(_digest(params), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify(params: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    try:
        raw = base64.b64decode(params.get("signature", ""), validate=True)
        key.verify(raw, _digest(params), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def answer_text(params: Mapping[str, str]) -> str:
    """A synchronous answer as UnionPay writes it: `k=v&…`, values not URL-encoded."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params))
