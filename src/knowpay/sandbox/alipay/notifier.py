"""Sending notifications the way Alipay does: form-encoded POSTs to notify_url, repeated on
Alipay's schedule until the answer is exactly `success` (8 tries within about 25 hours:
now, then 4m, 10m, 10m, 1h, 2h, 6h, 15h later), every delay multiplied by the time scale.

A held notification (the out_of_order fault) waits with the others of its trade until the
hold ends; they then go out newest first, each one's first try after the previous one's."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

RETRY_DELAYS_S = (4 * 60, 10 * 60, 10 * 60, 3600, 2 * 3600, 6 * 3600, 15 * 3600)
"""The waits between the 8 tries (PROTOCOLS.md 1.6)."""
ACK = "success"


@dataclass
class Delivery:
    """One notification and every try to deliver it."""

    id: str
    url: str
    params: dict[str, str]
    copies: int = 1
    lost: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    cancelled: bool = False
    held: bool = False
    first_delay_s: float = 0.0
    then: Delivery | None = None
    """Sent once this one has had its first try (an out-of-order release)."""

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
            "notify_id": self.params.get("notify_id"),
            "out_trade_no": self.params.get("out_trade_no"),
            "trade_status": self.params.get("trade_status"),
            "url": self.url,
            "copies": self.copies,
            "lost": self.lost,
            "delivered": self.delivered,
            "cancelled": self.cancelled,
            "held": self.held,
            "finished": self.finished,
            "attempts": self.attempts,
            "params": self.params,
        }


class Notifier:
    """A scheduler thread and a small pool of senders."""

    def __init__(self, time_scale: float, *, timeout_s: float = 5.0) -> None:
        self._scale = max(time_scale, 0.0)
        self._timeout_s = timeout_s
        self._cv = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count(1)
        self._log: list[Delivery] = []
        self._held: dict[str, list[Delivery]] = {}
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None

    def submit(
        self,
        url: str,
        params: dict[str, str],
        *,
        copies: int = 1,
        first_delay_s: float = 0.0,
        lost: bool = False,
        hold_s: float | None = None,
    ) -> Delivery:
        """Queue a signed notification; a `lost` one is logged but never sent. With `hold_s`,
        hold it with its trade's others: a hold starts with the first, lasts `hold_s`, then
        releases them newest first."""
        delivery = Delivery(f"dlv_{next(self._seq)}", url, params, max(copies, 1), lost)
        delivery.first_delay_s = first_delay_s
        with self._cv:
            self._log.append(delivery)
            if lost:
                return delivery
            self._start()
            if hold_s is None:
                self._push(delivery, first_delay_s)
                return delivery
            delivery.held = True
            key = params.get("out_trade_no", "")
            group = self._held.get(key)
            if group is None:
                group = self._held[key] = []
                timer = threading.Timer(hold_s, self._release, args=(key, group))
                timer.daemon = True
                timer.start()
            group.append(delivery)
        return delivery

    def _release(self, key: str, group: list[Delivery]) -> None:
        """The hold ends: chain the held notifications newest first and send the newest."""
        with self._cv:
            if self._held.get(key) is not group:
                return  # forgotten by a reset
            del self._held[key]
            newest_first = group[::-1]
            for delivery, older in itertools.pairwise(newest_first):
                delivery.then = older
            for delivery in newest_first:
                delivery.held = False
            if newest_first:
                self._push(newest_first[0], newest_first[0].first_delay_s)

    def log(self, out_trade_no: str | None = None) -> list[dict[str, Any]]:
        with self._cv:
            return [
                d.as_dict()
                for d in self._log
                if out_trade_no is None or d.params.get("out_trade_no") == out_trade_no
            ]

    def reset(self) -> None:
        """Forget every notification; the ones still waiting are never sent."""
        with self._cv:
            for delivery in self._log:
                delivery.cancelled = not delivery.delivered
            self._queue.clear()
            self._log.clear()
            self._held.clear()
            self._cv.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._http = httpx.Client(timeout=self._timeout_s, trust_env=False)
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="alipay-notify")
            self._thread = threading.Thread(target=self._run, name="alipay-notify", daemon=True)
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
            if delivery.then is not None:
                self._push(delivery.then, delivery.then.first_delay_s)
                delivery.then = None
            if any(a["status_code"] == 200 and a["body"] == ACK for a in answers):
                delivery.delivered = True
            elif len(delivery.attempts) <= len(RETRY_DELAYS_S):
                delay = RETRY_DELAYS_S[len(delivery.attempts) - 1] * self._scale
                self._push(delivery, delay)

    def _post_copies(self, delivery: Delivery) -> list[dict[str, Any]]:
        if delivery.copies == 1:
            return [self._post(delivery)]
        answers: list[dict[str, Any]] = []
        barrier = threading.Barrier(delivery.copies)
        lock = threading.Lock()

        def send() -> None:
            barrier.wait()
            answer = self._post(delivery)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=send) for _ in range(delivery.copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    def _post(self, delivery: Delivery) -> dict[str, Any]:
        assert self._http is not None
        try:
            response = self._http.post(
                delivery.url,
                content=urlencode(delivery.params).encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            return {"status_code": None, "body": f"{type(exc).__name__}: {exc}"}
        return {"status_code": response.status_code, "body": response.text}
