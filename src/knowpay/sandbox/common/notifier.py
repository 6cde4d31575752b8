"""The notifier every simulator (but WeChat Pay's) sends with: a scheduler thread and a small
pool of senders that deliver each notification, retry it on the gateway's schedule (every wait
multiplied by the time scale) until the merchant gives the gateway's success answer, and log
every try with the merchant's answers.

A gateway supplies its Delivery subclass (what it sends, its retry schedule and its JSON in
/_notifications), how to make one try's request (`prepare`, called afresh for every try) and
how to recognise success in an answer (`accepted`). Faults that shape delivery are common:
`lost` (logged, never sent), `copies` (each try sent that many times at once, a duplicate),
and a first try after `first_delay_s` (delayed)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

import httpx

Answer = dict[str, Any]
"""The merchant's answer to one POST: status_code (None when it could not be reached), body."""


@dataclass(kw_only=True)
class Delivery:
    """One notification and every try to deliver it."""

    retry_delays_s: ClassVar[tuple[float, ...]] = ()
    """The waits between tries: one try more than there are waits."""

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
            or len(self.attempts) > len(self.retry_delays_s)
        )

    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError


D = TypeVar("D", bound=Delivery)


@dataclass
class Post:
    """One try's request (every copy of it is the same), and what its log entry adds."""

    url: str
    content: bytes
    headers: dict[str, str]
    record: dict[str, Any] = field(default_factory=dict)


def is_2xx(answer: Answer) -> bool:
    return answer["status_code"] is not None and 200 <= answer["status_code"] < 300


class Notifier(Generic[D]):
    """A scheduler thread and a small pool of senders."""

    def __init__(
        self,
        time_scale: float,
        *,
        name: str,
        prepare: Callable[[D], Post],
        accepted: Callable[[Answer], bool],
        timeout_s: float,
    ) -> None:
        self._scale = max(time_scale, 0.0)
        self._name = name
        self._prepare = prepare
        self._accepted = accepted
        self._timeout_s = timeout_s
        self._cv = threading.Condition()
        self._queue: list[tuple[float, int, D]] = []
        self._seq = itertools.count(1)
        self._log: list[D] = []
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()

    def next_id(self) -> str:
        return f"dlv_{next(self._seq)}"

    def enqueue(self, delivery: D, first_delay_s: float = 0.0) -> D:
        """Log a delivery and queue its first try; a `lost` one is logged but never sent."""
        with self._cv:
            self._log.append(delivery)
            if not delivery.lost:
                self._start()
                self._push(delivery, first_delay_s)
        return delivery

    def entries(self, keep: Callable[[D], bool]) -> list[dict[str, Any]]:
        """The logged deliveries that `keep` keeps, as /_notifications shows them."""
        with self._cv:
            return [d.as_dict() for d in self._log if keep(d)]

    def reset(self) -> None:
        """Forget every delivery; the ones still waiting are never sent."""
        with self._cv:
            for delivery in self._log:
                delivery.cancelled = not delivery.delivered
            self._queue.clear()
            self._log.clear()
            self._cv.notify_all()

    def _attempted(self, delivery: D) -> None:
        """A hook, called with the lock held when a try has been logged."""

    def _start(self) -> None:
        if self._thread is None:
            # A gateway does not queue its callbacks a few at a time behind a slow merchant:
            # enough senders that the simulator is not what holds notifications back.
            self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix=self._name)
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _push(self, delivery: D, delay_s: float) -> None:
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

    def _attempt(self, delivery: D) -> None:
        if delivery.cancelled:
            return
        post = self._prepare(delivery)
        timed = self._post_copies(post, delivery.copies)
        answers = [answer for answer, _ in timed]
        with self._cv:
            if delivery.cancelled:
                return
            delivery.attempts.append(
                {
                    "at": datetime.now(UTC).isoformat(),
                    **post.record,
                    "answers": answers,
                    # How long the merchant took to answer each copy (the benchmark reads it).
                    "answer_ms": [elapsed_ms for _, elapsed_ms in timed],
                }
            )
            self._attempted(delivery)
            delays = delivery.retry_delays_s
            if any(self._accepted(a) for a in answers):
                delivery.delivered = True
            elif len(delivery.attempts) <= len(delays):
                self._push(delivery, delays[len(delivery.attempts) - 1] * self._scale)

    def _post_copies(self, post: Post, copies: int) -> list[tuple[Answer, float]]:
        if copies == 1:
            return [self._post(post)]
        answers: list[tuple[Answer, float]] = []
        barrier = threading.Barrier(copies)
        lock = threading.Lock()

        def send(copy: int) -> None:
            barrier.wait()
            answer = self._post(post, copy)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=send, args=(copy,)) for copy in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    def _client(self, copy: int) -> httpx.Client:
        """The client copy number `copy` of a notification goes out on: each copy of a
        duplicated one on a connection of its own, as separate callbacks arrive."""
        with self._clients_lock:
            while len(self._clients) <= copy:
                self._clients.append(httpx.Client(timeout=self._timeout_s, trust_env=False))
            return self._clients[copy]

    def _post(self, post: Post, copy: int = 0) -> tuple[Answer, float]:
        """The merchant's answer and how many milliseconds it took."""
        http = self._client(copy)
        started = time.perf_counter()
        try:
            response = http.post(post.url, content=post.content, headers=post.headers)
            answer: Answer = {"status_code": response.status_code, "body": response.text}
        except httpx.HTTPError as exc:
            answer = {"status_code": None, "body": f"{type(exc).__name__}: {exc}"}
        return answer, round((time.perf_counter() - started) * 1000, 3)
