"""Sending webhook events the way PayPal does: a JSON POST to the webhook's URL with the
five PAYPAL-* headers, a fresh transmission (id, time, signature) for every try, and tries
repeated until the answer is a 2xx — PayPal says "up to 25 times over 3 days". Its exact
schedule is not published; this one doubles from 1 minute to about 2 hours, then waits
4 hours, 25 retries in about 72 hours, every wait multiplied by the time scale."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knowpay.sandbox.common import notifier as common
from knowpay.sandbox.common.notifier import Post, is_2xx

RETRY_DELAYS_S = tuple(60 * 2**i for i in range(8)) + (4 * 3600,) * 17
"""The waits between tries: 25 retries, about 72 hours in all."""


@dataclass
class Delivery(common.Delivery):
    """One event for one webhook, and every try to deliver it."""

    retry_delays_s = RETRY_DELAYS_S

    id: str
    event_id: str
    event_type: str
    out_trade_no: str | None
    webhook_id: str
    url: str
    body: bytes
    faults: frozenset[str] = frozenset()

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


class Notifier(common.Notifier[Delivery]):
    """A scheduler thread and a small pool of senders; any 2xx delivers."""

    def __init__(self, time_scale: float, transmit: Transmit, *, timeout_s: float = 5.0) -> None:
        def prepare(delivery: Delivery) -> Post:
            headers, body = transmit(delivery)  # may repoint delivery.url
            record = {"transmission_id": headers.get("PAYPAL-TRANSMISSION-ID")}
            return Post(delivery.url, body, headers, record)

        super().__init__(
            time_scale, name="paypal-webhook", prepare=prepare, accepted=is_2xx, timeout_s=timeout_s
        )

    def submit(self, delivery: Delivery, *, first_delay_s: float = 0.0) -> Delivery:
        """Queue an event; a `lost` one is logged but never sent."""
        with self._cv:
            delivery.id = self.next_id()
            return self.enqueue(delivery, first_delay_s)

    def log(self, out_trade_no: str | None = None) -> list[dict[str, Any]]:
        return self.entries(lambda d: out_trade_no is None or d.out_trade_no == out_trade_no)
