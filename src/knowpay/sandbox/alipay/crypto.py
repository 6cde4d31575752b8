"""The gateway side of Alipay's RSA2: verify what merchants sign, sign what Alipay sends.

Written apart from knowpay's channel code on purpose (the sandbox imports nothing from
knowpay), so that one misreading of the protocol cannot hide on both sides."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def generate_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key, as the Alipay console generates."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _body_bytes(text: str) -> bytes:
    lines = [line.strip() for line in text.strip().splitlines()]
    return base64.b64decode("".join(line for line in lines if not line.startswith("-----")))


def load_private(text: str) -> rsa.RSAPrivateKey:
    """PEM (PKCS#1 or PKCS#8) or a bare base64 DER body."""
    if "BEGIN" in text:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    else:
        key = serialization.load_der_private_key(_body_bytes(text), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public(text: str) -> rsa.RSAPublicKey:
    """PEM or a bare base64 SubjectPublicKeyInfo body."""
    if "BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        key = serialization.load_der_public_key(_body_bytes(text))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def request_content(params: Mapping[str, str]) -> str:
    """What the merchant signed: all but `sign`, empty values left out, sorted by name."""
    names = sorted(name for name, value in params.items() if name != "sign" and value != "")
    return "&".join(name + "=" + params[name] for name in names)


def notify_content(params: Mapping[str, str]) -> str:
    """What Alipay signs in a notification or return: all but `sign` and `sign_type`."""
    names = sorted(name for name in params if name not in ("sign", "sign_type"))
    return "&".join(name + "=" + params[name] for name in names)


def sign(content: str, key: rsa.RSAPrivateKey, charset: str = "utf-8") -> str:
    """Over the bytes of `content` in the message's `charset`, as Alipay's SDKs sign."""
    raw = key.sign(content.encode(charset), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify(content: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
