"""Opaque, time-ordered ids with a type prefix (`ord_…`, `pay_…`).

The body is 26 Crockford base32 characters: 48 bits of milliseconds then 80 random bits
(the ULID layout), so that sorting ids sorts by creation time, which cursor pagination uses.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as `ord_01jd3k…`; later ids sort after earlier ones (to the ms)."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_base32(millis, 10)}{_base32(secrets.randbits(80), 16)}"
