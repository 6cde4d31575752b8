"""Back notifications the way UnionPay sends them: a form POST to backUrl, 5 sends in all,
the waits between them 0, 1, 2 and 4 minutes (PROTOCOLS.md section 3: "总共发送5次，每次的
间隔时间为0,1,2,4分钟"), every wait multiplied by the time scale. A send succeeds on HTTP 200
(UnionPay also takes 302); the body does not matter. Each send waits at most 10 s."""

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

RETRY_DELAYS_S = (0, 60, 120, 240)
"""The waits between the 5 sends."""
DELIVERED = frozenset({200, 302})


@dataclass
class Delivery:
    """One notification and every send of it."""

    id: str
    order_id: str
    """The consume's orderId (a refund's notification is filed under its consume)."""
    url: str
    params: dict[str, str]
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
            "order_id": self.order_id,
            "txn_type": self.params.get("txnType"),
            "notified_order_id": self.params.get("orderId"),
            "query_id": self.params.get("queryId"),
            "url": self.url,
            "copies": self.copies,
            "lost": self.lost,
            "delivered": self.delivered,
            "cancelled": self.cancelled,
            "finished": self.finished,
            "attempts": self.attempts,
            "params": self.params,
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

    def submit(
        self,
        order_id: str,
        url: str,
        params: dict[str, str],
        *,
        copies: int = 1,
        first_delay_s: float = 0.0,
        lost: bool = False,
    ) -> Delivery:
        """Queue a signed notification; a `lost` one is logged but never sent."""
        delivery = Delivery(f"dlv_{next(self._seq)}", order_id, url, params, max(copies, 1), lost)
        with self._cv:
            self._log.append(delivery)
            if not lost:
                self._start()
                self._push(delivery, first_delay_s)
        return delivery

    def log(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with self._cv:
            return [d.as_dict() for d in self._log if order_id is None or d.order_id == order_id]

    def reset(self) -> None:
        """Forget every notification; the ones still waiting are never sent."""
        with self._cv:
            for delivery in self._log:
                delivery.cancelled = not delivery.delivered
            self._queue.clear()
            self._log.clear()
            self._cv.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._http = httpx.Client(timeout=self._timeout_s, trust_env=False)
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="unionpay-notify")
            self._thread = threading.Thread(target=self._run, name="unionpay-notify", daemon=True)
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
            if any(a["status_code"] in DELIVERED for a in answers):
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
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
            )
        except httpx.HTTPError as exc:
            return {"status_code": None, "body": f"{type(exc).__name__}: {exc}"}
        return {"status_code": response.status_code, "body": response.text}
