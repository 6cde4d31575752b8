"""Opaque, time-ordered ids with a type prefix (`ord_…`, `pay_…`).

The body is 26 Crockford base32 characters: 48 bits of milliseconds then 80 random bits
(the ULID layout), so that sorting ids sorts by creation time, which cursor pagination uses.
Within one process the order is strict (monotonic ULIDs): an id made in the same millisecond
as the one before takes that one's time and a random part larger by a random step, so the
steps of a refund's timeline, or the events of one transaction, sort in the order they were
made while the next id stays unguessable.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RANDOM_BITS = 80
_STEP_BITS = 40
"""The random step between ids of one millisecond: 2^40 of them still fit in 80 bits."""


def _base32(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


class _Monotonic:
    """The last (millisecond, random part) handed out, to go strictly past it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._millis = -1
        self._random = 0

    def next(self, millis: int) -> tuple[int, int]:
        with self._lock:
            if millis > self._millis:
                self._millis, self._random = millis, secrets.randbits(_RANDOM_BITS)
            else:  # the same millisecond (or the clock stepped back): keep counting up
                self._random += 1 + secrets.randbits(_STEP_BITS)
                if self._random >> _RANDOM_BITS:  # overflowed: borrow the next millisecond
                    self._millis, self._random = self._millis + 1, secrets.randbits(_STEP_BITS)
            return self._millis, self._random


_last = _Monotonic()


def new_id(prefix: str) -> str:
    """A new id such as `ord_01jd3k…`; later ids sort after earlier ones (strictly, within
    this process; to the millisecond across processes)."""
    millis, random_part = _last.next(time.time_ns() // 1_000_000)
    return f"{prefix}_{_base32(millis, 10)}{_base32(random_part, 16)}"
