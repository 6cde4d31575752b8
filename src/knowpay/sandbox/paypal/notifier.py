"""Sending webhook events the way PayPal does: a JSON POST to the webhook's URL with the
five PAYPAL-* headers, a fresh transmission (id, time, signature) for every try, and tries
repeated until the answer is a 2xx — PayPal says "up to 25 times over 3 days". Its exact
schedule is not published; this one doubles from 1 minute to about 2 hours, then waits
4 hours, 25 retries in about 72 hours, every wait multiplied by the time scale."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

RETRY_DELAYS_S = tuple(60 * 2**i for i in range(8)) + (4 * 3600,) * 17
"""The waits between tries: 25 retries, about 72 hours in all."""


@dataclass
class Delivery:
    """One event for one webhook, and every try to deliver it."""

    id: str
    event_id: str
    event_type: str
    out_trade_no: str | None
    webhook_id: str
    url: str
    body: bytes
    faults: frozenset[str] = frozenset()
    copies: int = 1
    lost: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    cancelled: bool = False

    @property
    def finished(self) -> bool:
        return (
            self.delivered
            or self.lost
            or self.cancelled
            or len(self.attempts) > len(RETRY_DELAYS_S)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "out_trade_no": self.out_trade_no,
            "webhook_id": self.webhook_id,
            "url": self.url,
            "faults": sorted(self.faults),
            "copies": self.copies,
            "lost": self.lost,
            "delivered": self.delivered,
            "cancelled": self.cancelled,
            "finished": self.finished,
            "attempts": self.attempts,
            "body": self.body.decode("utf-8"),
        }


Transmit = Callable[[Delivery], tuple[dict[str, str], bytes]]
"""The headers and bytes of one try (a new transmission each time)."""


class Notifier:
    """A scheduler thread and a small pool of senders."""

    def __init__(self, time_scale: float, transmit: Transmit, *, timeout_s: float = 5.0) -> None:
        self._scale = max(time_scale, 0.0)
        self._transmit = transmit
        self._timeout_s = timeout_s
        self._cv = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count(1)
        self._log: list[Delivery] = []
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None

    def submit(self, delivery: Delivery, *, first_delay_s: float = 0.0) -> Delivery:
        """Queue an event; a `lost` one is logged but never sent."""
        with self._cv:
            delivery.id = f"dlv_{next(self._seq)}"
            self._log.append(delivery)
            if not delivery.lost:
                self._start()
                self._push(delivery, first_delay_s)
        return delivery

    def log(self, out_trade_no: str | None = None) -> list[dict[str, Any]]:
        with self._cv:
            return [
                d.as_dict()
                for d in self._log
                if out_trade_no is None or d.out_trade_no == out_trade_no
            ]

    def reset(self) -> None:
        """Forget every delivery; the ones still waiting are never sent."""
        with self._cv:
            for delivery in self._log:
                delivery.cancelled = not delivery.delivered
            self._queue.clear()
            self._log.clear()
            self._cv.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._http = httpx.Client(timeout=self._timeout_s, trust_env=False)
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="paypal-webhook")
            self._thread = threading.Thread(target=self._run, name="paypal-webhook", daemon=True)
            self._thread.start()

    def _push(self, delivery: Delivery, delay_s: float) -> None:
        heapq.heappush(self._queue, (time.monotonic() + delay_s, next(self._seq), delivery))
        self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cv.wait(wait)
                _, _, delivery = heapq.heappop(self._queue)
            assert self._pool is not None
            self._pool.submit(self._attempt, delivery)

    def _attempt(self, delivery: Delivery) -> None:
        if delivery.cancelled:
            return
        headers, body = self._transmit(delivery)
        answers = self._post_copies(delivery, headers, body)
        with self._cv:
            if delivery.cancelled:
                return
            delivery.attempts.append(
                {
                    "at": datetime.now(UTC).isoformat(),
                    "transmission_id": headers.get("PAYPAL-TRANSMISSION-ID"),
                    "answers": answers,
                }
            )
            if any(a["status_code"] is not None and 200 <= a["status_code"] < 300 for a in answers):
                delivery.delivered = True
            elif len(delivery.attempts) <= len(RETRY_DELAYS_S):
                self._push(delivery, RETRY_DELAYS_S[len(delivery.attempts) - 1] * self._scale)

    def _post_copies(
        self, delivery: Delivery, headers: dict[str, str], body: bytes
    ) -> list[dict[str, Any]]:
        if delivery.copies == 1:
            return [self._post(delivery.url, headers, body)]
        answers: list[dict[str, Any]] = []
        barrier = threading.Barrier(delivery.copies)
        lock = threading.Lock()

        def send() -> None:
            barrier.wait()
            answer = self._post(delivery.url, headers, body)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=send) for _ in range(delivery.copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    def _post(self, url: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        assert self._http is not None
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return {"status_code": None, "body": f"{type(exc).__name__}: {exc}"}
        return {"status_code": response.status_code, "body": response.text}
