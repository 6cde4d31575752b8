"""Alipay RSA2 signatures (PROTOCOLS.md 1.2, 1.3, 1.6).

- Requests: every parameter but `sign` (`sign_type` included), empty values dropped, sorted
  by key, `key=value` joined with `&`, raw values; SHA256withRSA, PKCS#1 v1.5, base64.
- Notifications: the decoded form without `sign` and `sign_type`, sorted, verified with the
  Alipay public key.
- Synchronous responses: the signature covers the exact raw JSON text of the
  `<method>_response` value, cut out of the body as received, never re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from knowpay.kit.jsontext import parse_json

REQUEST_EXCLUDED = frozenset({"sign"})
NOTIFICATION_EXCLUDED = frozenset({"sign", "sign_type"})
SIGN_TYPE = "RSA2"


class AlipayKeyError(ValueError):
    """A key that is neither PEM nor the bare base64 the Alipay console shows."""


def _der(text: str) -> bytes:
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AlipayKeyError("the key is not valid base64") from exc


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An app private key: PEM (PKCS#1 or PKCS#8) or the console's bare base64 body."""
    try:
        if "-----BEGIN" in text:
            key: Any = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = serialization.load_der_private_key(_der(text), password=None)
    except (ValueError, TypeError) as exc:
        raise AlipayKeyError(f"not an RSA private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AlipayKeyError("Alipay RSA2 needs an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """The Alipay public key: PEM (SubjectPublicKeyInfo or PKCS#1) or bare base64."""
    try:
        if "-----BEGIN" in text:
            key: Any = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(_der(text))
    except (ValueError, TypeError) as exc:
        raise AlipayKeyError(f"not an RSA public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise AlipayKeyError("Alipay RSA2 needs an RSA public key")
    return key


def signing_string(
    params: Mapping[str, str], excluded: Collection[str], *, drop_empty: bool = True
) -> str:
    """`k=v&…` over the params sorted by key, without the excluded keys (and empty values)."""
    items = sorted(
        (key, value)
        for key, value in params.items()
        if key not in excluded and not (drop_empty and value == "")
    )
    return "&".join(f"{key}={value}" for key, value in items)


def request_signing_string(params: Mapping[str, str]) -> str:
    """What a request's `sign` covers: everything but `sign`, empty values dropped."""
    return signing_string(params, REQUEST_EXCLUDED)


def notification_signing_strings(params: Mapping[str, str]) -> list[str]:
    """What a notification's `sign` may cover. Alipay's reference check keeps empty values and
    its documentation drops them; Alipay sends none, and either string must verify."""
    kept = signing_string(params, NOTIFICATION_EXCLUDED, drop_empty=False)
    dropped = signing_string(params, NOTIFICATION_EXCLUDED)
    return [kept] if kept == dropped else [kept, dropped]


def sign(content: str, key: rsa.RSAPrivateKey) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over the UTF-8 bytes, standard base64 without newlines."""
    signature = key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(content: str, signature: str, key: rsa.RSAPublicKey, charset: str = "utf-8") -> bool:
    """True when `signature` (base64) is Alipay's RSA2 signature of `content`, signed as the
    bytes of `content` in the message's `charset` (as Alipay's SDKs check: a GBK notification
    is signed over its GBK bytes)."""
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
        signed = content.encode(charset)
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        return False
    try:
        key.verify(raw, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sign_params(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The request params with their `sign` added."""
    signed = dict(params)
    signed["sign"] = sign(request_signing_string(params), key)
    return signed


class MalformedBody(ValueError):
    """A body that is not the JSON object Alipay answers with."""


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A synchronous response body split into what the signature covers and the signature."""

    key: str
    """`error_response` or `<method with . → _>_response`."""
    text: str
    """The exact JSON text of that member, as received."""
    content: dict[str, Any]
    sign: str | None


def response_key(method: str) -> str:
    """`alipay.trade.query` → `alipay_trade_query_response`."""
    return method.replace(".", "_") + "_response"


def _top_level_members(raw: str) -> dict[str, tuple[int, int]]:
    """Each top-level member of a JSON object → the span of its value in `raw`."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    position = _skip_space(raw, 0)
    if raw[position : position + 1] != "{":
        raise ValueError("the body is not a JSON object")
    position = _skip_space(raw, position + 1)
    if raw[position : position + 1] == "}":
        return spans
    while True:
        name, position = decoder.raw_decode(raw, position)
        if not isinstance(name, str):
            raise ValueError("a member name is not a string")
        position = _skip_space(raw, position)
        if raw[position : position + 1] != ":":
            raise ValueError("expected ':' after a member name")
        start = _skip_space(raw, position + 1)
        _, end = decoder.raw_decode(raw, start)
        spans[name] = (start, end)
        position = _skip_space(raw, end)
        separator = raw[position : position + 1]
        if separator == "}":
            return spans
        if separator != ",":
            raise ValueError("expected ',' or '}' between members")
        position = _skip_space(raw, position + 1)


def _skip_space(raw: str, position: int) -> int:
    while position < len(raw) and raw[position] in " \t\r\n":
        position += 1
    return position


def split_response(raw: str, method: str) -> RawResponse:
    """Cut the `<method>_response` (or `error_response`) member out of the raw body.

    MalformedBody when the body is not the JSON object Alipay sends."""
    try:
        whole = parse_json(raw)  # first: the members' scan below then meets only JSON
        spans = _top_level_members(raw)
    except ValueError as exc:  # NotJson, or not the object of members Alipay sends
        raise MalformedBody(f"{type(exc).__name__}: {exc}"[:300]) from exc
    wanted = response_key(method)
    key = wanted if wanted in spans else "error_response"
    if key not in spans:
        raise MalformedBody(f"the body has neither {wanted} nor error_response")
    start, end = spans[key]
    content = whole[key]
    if not isinstance(content, dict):
        raise MalformedBody(f"{key} is not an object")
    signature = whole.get("sign")
    return RawResponse(
        key=key,
        text=raw[start:end],
        content=content,
        sign=signature if isinstance(signature, str) and signature else None,
    )
