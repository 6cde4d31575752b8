"""Sending webhooks the way Stripe does: a JSON POST of the event to each endpoint, signed
afresh at every try (a new `t`), repeated with exponential backoff for about three days until
the endpoint answers any 2xx; every delay multiplied by the time scale."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knowpay.sandbox.common import notifier as common
from knowpay.sandbox.common.notifier import Post, is_2xx

RETRY_DELAYS_S = (60, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 18 * 3600, 24 * 3600)
"""Waits between tries: 9 tries over about 2.5 days (Stripe: up to 3 days in live mode)."""
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

Signer = Callable[[bytes], str]
"""The Stripe-Signature header for a body, computed at the moment of sending."""


@dataclass
class Delivery(common.Delivery):
    """One event for one endpoint, and every try to deliver it."""

    retry_delays_s = RETRY_DELAYS_S

    id: str
    event_id: str
    event_type: str
    out_trade_no: str | None
    endpoint_id: str
    url: str
    body: bytes
    signer: Signer
    forged: bool = False
    first_delay_s: float = 0.0

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


def _signed_post(delivery: Delivery) -> Post:
    """One try: signed now (every copy of it is the same request)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": delivery.signer(delivery.body),
        "User-Agent": USER_AGENT,
        "Accept": "*/*; q=0.5, application/xml",
    }
    return Post(delivery.url, delivery.body, headers)


class Notifier(common.Notifier[Delivery]):
    """A scheduler thread and a small pool of senders; any 2xx delivers."""

    def __init__(self, time_scale: float, *, timeout_s: float = 10.0) -> None:
        super().__init__(
            time_scale,
            name="stripe-webhook",
            prepare=_signed_post,
            accepted=is_2xx,
            timeout_s=timeout_s,
        )

    def submit(self, delivery: Delivery) -> Delivery:
        """Queue a delivery; a `lost` one is logged but never sent."""
        return self.enqueue(delivery, delivery.first_delay_s)

    def log(
        self, out_trade_no: str | None = None, event_type: str | None = None
    ) -> list[dict[str, Any]]:
        return self.entries(
            lambda d: (
                (out_trade_no is None or d.out_trade_no == out_trade_no)
                and (event_type is None or d.event_type == event_type)
            )
        )
