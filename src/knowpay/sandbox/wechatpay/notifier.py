"""Callbacks to notify_url as WeChat Pay sends them: a JSON envelope whose resource is sealed
with AEAD_AES_256_GCM, signed with the platform key, retried on WeChat's schedule until a 2xx
(15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h, times `time_scale`), with the faults
of the trade applied. Out of order: a trade's callbacks are held, then released newest first."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from knowpay.sandbox.wechatpay import crypto
from knowpay.sandbox.wechatpay.keys import SimulatorKeys
from knowpay.sandbox.wechatpay.store import Faults, beijing, now_utc

logger = logging.getLogger("knowpay.sandbox.wechatpay")

RETRY_SCHEDULE_S = (
    15,
    15,
    30,
    180,
    600,
    1200,
    1800,
    1800,
    1800,
    3600,
    10800,
    10800,
    10800,
    21600,
    21600,
)
REPLY_TIMEOUT_S = 5.0
STALE_BY_S = 600
SUMMARIES = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功"}


@dataclass
class Delivery:
    """One callback and its attempts so far."""

    notification_id: str
    event_type: str
    out_trade_no: str
    notify_url: str
    body: bytes
    faults: Faults
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    lost: bool = False
    held: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.notification_id,
            "out_trade_no": self.out_trade_no,
            "event_type": self.event_type,
            "notify_url": self.notify_url,
            "delivered": self.delivered,
            "lost": self.lost,
            "held": self.held,
            "attempts": list(self.attempts),
        }


def envelope(
    keys: SimulatorKeys, event_type: str, original_type: str, resource: dict[str, Any]
) -> tuple[str, bytes]:
    """The callback body: its id and the JSON bytes (fixed across retries, as WeChat's are)."""
    notification_id = str(uuid.uuid4())
    plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = crypto.seal(keys.apiv3_key, plaintext, original_type)
    sealed["original_type"] = original_type
    body = {
        "id": notification_id,
        "create_time": beijing(now_utc()),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": SUMMARIES.get(event_type, event_type),
        "resource": sealed,
    }
    return notification_id, json.dumps(body, ensure_ascii=False).encode()


class Notifier:
    """A scheduler thread plus short-lived sender threads; stop() ends both."""

    def __init__(self, keys: SimulatorKeys, time_scale: float) -> None:
        self._keys = keys
        self._scale = time_scale
        self._queue: list[tuple[float, int, Delivery]] = []
        self._counter = itertools.count()
        self._wakeup = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._held: list[Delivery] = []
        self._sends = itertools.count(1)
        self._http = httpx.Client(timeout=REPLY_TIMEOUT_S, trust_env=False)
        self.deliveries: list[Delivery] = []

    def submit(self, delivery: Delivery) -> None:
        with self._wakeup:
            self.deliveries.append(delivery)
            if delivery.faults.lose_notification:
                delivery.lost = True
                return
            if delivery.faults.out_of_order:
                delivery.held = True
                self._held.append(delivery)
                return
            self._schedule(delivery, max(0.0, delivery.faults.delay_s))

    def held_trades(self) -> set[str]:
        with self._wakeup:
            return {d.out_trade_no for d in self._held}

    def release(self, out_trade_no: str) -> list[Delivery]:
        """Send the trade's held callbacks newest first, each first attempt finished before the
        next one starts (retries then follow the schedule); returns them in sending order."""
        with self._wakeup:
            released = [d for d in reversed(self._held) if d.out_trade_no == out_trade_no]
            self._held = [d for d in self._held if d.out_trade_no != out_trade_no]
            for delivery in released:
                delivery.held = False
        if released:
            threading.Thread(
                target=self._send_in_turn,
                args=(released,),
                name="wechatpay-sandbox-release",
                daemon=True,
            ).start()
        return released

    def _send_in_turn(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            if self._stopped:
                return
            self._attempt(delivery)

    def every(self) -> list[Delivery]:
        with self._wakeup:
            return list(self.deliveries)

    def for_trade(self, out_trade_no: str) -> list[Delivery]:
        with self._wakeup:
            return [d for d in self.deliveries if d.out_trade_no == out_trade_no]

    def cancel_pending(self) -> None:
        """Drop every scheduled attempt and held callback (a test starting afresh); sends in
        flight still finish."""
        with self._wakeup:
            self._queue.clear()
            self._held.clear()

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify_all()
        self._http.close()

    def _schedule(self, delivery: Delivery, delay_s: float) -> None:
        heapq.heappush(self._queue, (time.monotonic() + delay_s, next(self._counter), delivery))
        self._wakeup.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="wechatpay-sandbox-notifier", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopped and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wakeup.wait(timeout)
                if self._stopped:
                    return
                _, _, delivery = heapq.heappop(self._queue)
            threading.Thread(target=self._attempt, args=(delivery,), daemon=True).start()

    def _attempt(self, delivery: Delivery) -> None:
        copies = delivery.faults.duplicate if not delivery.attempts else 1
        with self._wakeup:
            send_no = next(self._sends)  # the order attempts started in, across all trades
        replies: list[dict[str, Any]] = [{} for _ in range(copies)]
        barrier = threading.Barrier(copies)

        answer_ms: list[float] = [0.0] * copies

        def send(index: int) -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)  # the copies leave together, as concurrent duplicates
            started = time.perf_counter()
            replies[index] = self._send(delivery)
            answer_ms[index] = round((time.perf_counter() - started) * 1000, 3)

        senders = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(copies)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        ok = any(200 <= int(reply.get("status") or 0) < 300 for reply in replies)
        with self._wakeup:
            delivery.attempts.append(
                {
                    "at": beijing(now_utc()),
                    "send_no": send_no,
                    "replies": replies,
                    # How long the merchant took to answer each copy (the benchmark reads it).
                    "answer_ms": answer_ms,
                }
            )
            if ok:
                delivery.delivered = True
                return
            retry = len(delivery.attempts) - 1
            if self._stopped or retry >= len(RETRY_SCHEDULE_S):
                return
            self._schedule(delivery, RETRY_SCHEDULE_S[retry] * self._scale)

    def _send(self, delivery: Delivery) -> dict[str, Any]:
        """One POST; WeChat counts only a 2xx within the timeout as received."""
        try:
            response = self._http.post(
                delivery.notify_url, content=delivery.body, headers=self.headers(delivery)
            )
        except httpx.HTTPError as exc:
            return {"status": None, "error": type(exc).__name__}
        except RuntimeError:  # the client was closed by stop()
            return {"status": None, "error": "stopped"}
        return {"status": response.status_code, "body": response.text[:300]}

    def headers(self, delivery: Delivery) -> dict[str, str]:
        """Fresh Wechatpay-* headers for one attempt, faults applied."""
        faults = delivery.faults
        timestamp = str(int(time.time()) - (STALE_BY_S if faults.stale_timestamp else 0))
        nonce = crypto.random_string(32)
        key = crypto.forger_key() if faults.forge_signature else self._keys.platform_key
        signature = crypto.sign_sha256_rsa(key, [timestamp.encode(), nonce.encode(), delivery.body])
        return {
            "Content-Type": "application/json",
            "User-Agent": "Mozilla/4.0 (knowpay WeChat Pay sandbox)",
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": self._keys.signing_serial,
            "Wechatpay-Signature-Type": crypto.AUTH_SCHEME,
        }
