"""Stripe webhook signatures (PROTOCOLS.md §4): `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`.

The signed payload is `"<t>.<raw body>"`; each `v1` is the hex HMAC-SHA256 of it keyed with
an endpoint secret, the whole `whsec_…` string as UTF-8 (not base64-decoded). A webhook is
genuine when any `v1` matches any secret we hold (the current one, and the previous ones
while a secret is being rolled: Stripe then signs with both). `v0` and other schemes are
ignored. A timestamp older than the tolerance is refused (a replay); like Stripe's own
libraries, only the past side is checked, so a gateway clock running ahead does no harm."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from knowpay.channels.errors import SignatureInvalid

SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
HEADER = "Stripe-Signature"
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
"""ASCII digits only: str.isdigit() also takes "²", which int() refuses."""


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with the whole endpoint secret."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], body: bytes, timestamp: int) -> str:
    """The header Stripe sends: one `v1` per secret it currently signs with."""
    parts = [f"t={timestamp}"]
    parts += [f"{SCHEME}={compute_signature(secret, timestamp, body)}" for secret in secrets]
    return ",".join(parts)


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the `v1` signatures of a header (other schemes ignored)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator:
            continue
        if key == "t":
            if timestamp is not None:
                raise SignatureInvalid("the Stripe-Signature header names t twice")
            if not _TIMESTAMP.fullmatch(value):
                raise SignatureInvalid(f"the Stripe-Signature timestamp {value!r} is not a number")
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    if timestamp is None:
        raise SignatureInvalid("the Stripe-Signature header has no timestamp")
    if not signatures:
        raise SignatureInvalid(f"the Stripe-Signature header has no {SCHEME} signature")
    return timestamp, signatures


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a webhook over its raw body; its signed timestamp when genuine and recent.

    SignatureInvalid when the header is missing or malformed, when no `v1` matches any of
    `secrets`, or when the timestamp is older than `tolerance_s` seconds before `now`."""
    if not header:
        raise SignatureInvalid("the webhook carries no Stripe-Signature header")
    usable = [secret for secret in secrets if secret]
    if not usable:
        raise SignatureInvalid("no webhook secret is configured")
    timestamp, signatures = parse_header(header)
    matched = False
    for secret in usable:
        expected = compute_signature(secret, timestamp, body)
        for candidate in signatures:
            matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8"))
    if not matched:
        raise SignatureInvalid("no v1 signature matches the webhook secret")
    if timestamp < now.timestamp() - tolerance_s:
        raise SignatureInvalid(
            f"the webhook was signed at {timestamp}, more than {tolerance_s} s ago"
        )
    return timestamp
