"""An injectable clock, so that expiry, lockouts and retries can be tested without sleeping;
and the days of a time zone, which reports and the console count in."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests and simulations)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


def day_start(day: date, timezone: str) -> datetime:
    """Midnight at the start of `day` in `timezone` (`limits.timezone` for reports and the
    console: a day staff name is the day they read on its pages, not UTC's, which began at
    08:00 in Beijing)."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone))


def day_of(moment: datetime, timezone: str) -> date:
    """The day `moment` falls on in `timezone`."""
    return moment.astimezone(ZoneInfo(timezone)).date()
