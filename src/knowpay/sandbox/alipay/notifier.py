"""Sending notifications the way Alipay does: form-encoded POSTs to notify_url, repeated on
Alipay's schedule until the answer is exactly `success` (8 tries within about 25 hours:
now, then 4m, 10m, 10m, 1h, 2h, 6h, 15h later), every delay multiplied by the time scale.

A held notification (the out_of_order fault) waits with the others of its trade until the
hold ends; they then go out newest first, each one's first try after the previous one's."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from knowpay.sandbox.common import notifier as common
from knowpay.sandbox.common.notifier import Answer, Post

RETRY_DELAYS_S = (4 * 60, 10 * 60, 10 * 60, 3600, 2 * 3600, 6 * 3600, 15 * 3600)
"""The waits between the 8 tries (PROTOCOLS.md 1.6)."""
ACK = "success"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@dataclass
class Delivery(common.Delivery):
    """One notification and every try to deliver it."""

    retry_delays_s = RETRY_DELAYS_S

    id: str
    url: str
    params: dict[str, str]
    held: bool = False
    first_delay_s: float = 0.0
    then: Delivery | None = None
    """Sent once this one has had its first try (an out-of-order release)."""

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


def _form_post(delivery: Delivery) -> Post:
    return Post(delivery.url, urlencode(delivery.params).encode("ascii"), {"Content-Type": FORM})


def _acknowledged(answer: Answer) -> bool:
    return bool(answer["status_code"] == 200 and answer["body"] == ACK)


class Notifier(common.Notifier[Delivery]):
    """A scheduler thread and a small pool of senders; held notifications wait by trade."""

    def __init__(self, time_scale: float, *, timeout_s: float = 5.0) -> None:
        super().__init__(
            time_scale,
            name="alipay-notify",
            prepare=_form_post,
            accepted=_acknowledged,
            timeout_s=timeout_s,
        )
        self._held: dict[str, list[Delivery]] = {}

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
        delivery = Delivery(self.next_id(), url, params, copies=max(copies, 1), lost=lost)
        delivery.first_delay_s = first_delay_s
        if hold_s is None or lost:
            return self.enqueue(delivery, first_delay_s)
        with self._cv:
            self._log.append(delivery)
            self._start()
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

    def _attempted(self, delivery: Delivery) -> None:
        if delivery.then is not None:
            self._push(delivery.then, delivery.then.first_delay_s)
            delivery.then = None

    def log(self, out_trade_no: str | None = None) -> list[dict[str, Any]]:
        return self.entries(
            lambda d: out_trade_no is None or d.params.get("out_trade_no") == out_trade_no
        )

    def reset(self) -> None:
        """Forget every notification; the ones still waiting are never sent."""
        with self._cv:
            super().reset()
            self._held.clear()
