"""The in-process rate-limit counters: swept by one long-lived thread, never by a thread
started on the request path."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from limits import parse
from limits.strategies import MovingWindowRateLimiter

from knowpay.kit.config import RateLimitSettings
from knowpay.kit.ratelimit import RateLimiter, Rule, SweptMemoryStorage


def _threads_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    started: list[str] = []
    original: Callable[[threading.Thread], None] = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    return started


def test_counting_requests_in_memory_starts_no_thread_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter = RateLimiter(RateLimitSettings(), redis_url=None, master_key="k" * 40)
    rule = Rule.parse("api_key", "1000/second")
    started = _threads_started(monkeypatch)

    for _ in range(20):
        assert limiter.hit(rule, "caller").allowed
        # Longer than the 10 ms timer `limits` would start again after each one ran out.
        time.sleep(0.015)

    assert started == []


def test_expired_window_entries_are_swept_away() -> None:
    storage = SweptMemoryStorage(sweep_every_s=0.05)
    strategy = MovingWindowRateLimiter(storage)
    item = parse("5/second")
    for _ in range(5):
        assert strategy.hit(item, "caller")
    assert not strategy.hit(item, "caller")
    assert any(storage.events.values())

    deadline = time.monotonic() + 3
    while any(storage.events.values()) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert not any(storage.events.values())
    assert strategy.hit(item, "caller")


def test_the_sweeping_thread_ends_with_its_storage() -> None:
    storage = SweptMemoryStorage(sweep_every_s=0.02)
    sweeper: Any = storage.timer
    assert sweeper.is_alive()
    collected = weakref.ref(storage)

    del storage
    gc.collect()

    assert collected() is None
    sweeper.join(timeout=2)
    assert not sweeper.is_alive()


def test_the_sweeper_pauses_between_sweeps_even_with_time_sleep_patched_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test that patches `time.sleep` away (to skip retry back-offs) once had every
    sweeper of the process spinning, and the suite crawling."""
    sweeps: list[float] = []

    class CountedStorage(SweptMemoryStorage):
        def sweep(self) -> None:
            sweeps.append(time.monotonic())
            super().sweep()

    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    storage = CountedStorage(sweep_every_s=0.05)
    threading.Event().wait(0.5)
    del storage

    assert 3 <= len(sweeps) <= 15
