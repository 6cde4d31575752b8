"""Sending webhooks the way Stripe does: a JSON POST of the event to each endpoint, signed
afresh at every try (a new `t`), repeated with exponential backoff for about three days until
the endpoint answers any 2xx; every delay multiplied by the time scale."""

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

RETRY_DELAYS_S = (60, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 18 * 3600, 24 * 3600)
"""Waits between tries: 9 tries over about 2.5 days (Stripe: up to 3 days in live mode)."""
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

Signer = Callable[[bytes], str]
"""The Stripe-Signature header for a body, computed at the moment of sending."""


@dataclass
class Delivery:
    """One event for one endpoint, and every try to deliver it."""

    id: str
    event_id: str
    event_type: str
    out_trade_no: str | None
    endpoint_id: str
    url: str
    body: bytes
    signer: Signer
    copies: int = 1
    lost: bool = False
    forged: bool = False
    first_delay_s: float = 0.0
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
            "type": self.event_type,
            "out_trade_no": self.out_trade_no,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "copies": self.copies,
            "lost": self.lost,
            "forged": self.forged,
            "delivered": self.delivered,
            "cancelled": self.cancelled,
            "finished": self.finished,
            "attempts": self.attempts,
            "body": self.body.decode("utf-8"),
        }


class Notifier:
    """A scheduler thread and a small pool of senders."""

    def __init__(self, time_scale: float, *, timeout_s: float = 10.0) -> None:
        self._scale = max(time_scale, 0.0)
        self._timeout_s = timeout_s
        self._cv = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count(1)
        self._log: list[Delivery] = []
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None

    def submit(self, delivery: Delivery) -> Delivery:
        """Queue a delivery; a `lost` one is logged but never sent."""
        with self._cv:
            self._log.append(delivery)
            if delivery.lost:
                return delivery
            self._start()
            self._push(delivery, delivery.first_delay_s)
        return delivery

    def next_id(self) -> str:
        return f"dlv_{next(self._seq)}"

    def log(
        self, out_trade_no: str | None = None, event_type: str | None = None
    ) -> list[dict[str, Any]]:
        with self._cv:
            return [
                d.as_dict()
                for d in self._log
                if (out_trade_no is None or d.out_trade_no == out_trade_no)
                and (event_type is None or d.event_type == event_type)
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
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stripe-webhook")
            self._thread = threading.Thread(target=self._run, name="stripe-webhooks", daemon=True)
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
        answers = self._post_copies(delivery)
        with self._cv:
            if delivery.cancelled:
                return
            delivery.attempts.append({"at": datetime.now(UTC).isoformat(), "answers": answers})
            if any(a["status_code"] is not None and 200 <= a["status_code"] < 300 for a in answers):
                delivery.delivered = True
            elif len(delivery.attempts) <= len(RETRY_DELAYS_S):
                delay = RETRY_DELAYS_S[len(delivery.attempts) - 1] * self._scale
                self._push(delivery, delay)

    def _post_copies(self, delivery: Delivery) -> list[dict[str, Any]]:
        signature = delivery.signer(delivery.body)  # one moment: every copy is the same request
        if delivery.copies == 1:
            return [self._post(delivery, signature)]
        answers: list[dict[str, Any]] = []
        barrier = threading.Barrier(delivery.copies)
        lock = threading.Lock()

        def send() -> None:
            barrier.wait()
            answer = self._post(delivery, signature)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=send) for _ in range(delivery.copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    def _post(self, delivery: Delivery, signature: str) -> dict[str, Any]:
        assert self._http is not None
        try:
            response = self._http.post(
                delivery.url,
                content=delivery.body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": signature,
                    "User-Agent": USER_AGENT,
                    "Accept": "*/*; q=0.5, application/xml",
                },
            )
        except httpx.HTTPError as exc:
            return {"status_code": None, "body": f"{type(exc).__name__}: {exc}"}
        return {"status_code": response.status_code, "body": response.text}
