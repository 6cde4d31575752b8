"""How the test gateway signs its notifications: `Knowpay-Test-Signature: t=…,v1=…`,
HMAC-SHA256 over "t.body", like Stripe's webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "knowpay-test-signature"
TOLERANCE_S = 300
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
"""ASCII digits only: str.isdigit() also takes "²", which int() refuses."""


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(key: bytes, header: str, body: bytes, now_s: int) -> bool:
    """True when one `v1` value matches and the timestamp is within the tolerance."""
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for name, value in parts if name.strip() == "t"]
    signatures = [value for name, value in parts if name.strip() == "v1"]
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]) or not signatures:
        return False
    timestamp = int(timestamps[0])
    if abs(now_s - timestamp) > TOLERANCE_S:
        return False
    expected = sign(key, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate.strip()) for candidate in signatures)
