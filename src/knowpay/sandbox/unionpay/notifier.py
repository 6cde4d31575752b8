"""Back notifications the way UnionPay sends them: a form POST to backUrl, 5 sends in all,
the waits between them 0, 1, 2 and 4 minutes (PROTOCOLS.md section 3: "总共发送5次，每次的
间隔时间为0,1,2,4分钟"), every wait multiplied by the time scale. A send succeeds on HTTP 200
(UnionPay also takes 302); the body does not matter. Each send waits at most 10 s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from knowpay.sandbox.common import notifier as common
from knowpay.sandbox.common.notifier import Answer, Post

RETRY_DELAYS_S = (0, 60, 120, 240)
"""The waits between the 5 sends."""
DELIVERED = frozenset({200, 302})
FORM = "application/x-www-form-urlencoded; charset=UTF-8"


@dataclass
class Delivery(common.Delivery):
    """One notification and every send of it."""

    retry_delays_s = RETRY_DELAYS_S

    id: str
    order_id: str
    """The consume's orderId (a refund's notification is filed under its consume)."""
    url: str
    params: dict[str, str]

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


def _form_post(delivery: Delivery) -> Post:
    return Post(delivery.url, urlencode(delivery.params).encode("ascii"), {"Content-Type": FORM})


def _delivered(answer: Answer) -> bool:
    return answer["status_code"] in DELIVERED


class Notifier(common.Notifier[Delivery]):
    """A scheduler thread and a small pool of senders."""

    def __init__(self, time_scale: float, *, timeout_s: float = 10.0) -> None:
        super().__init__(
            time_scale,
            name="unionpay-notify",
            prepare=_form_post,
            accepted=_delivered,
            timeout_s=timeout_s,
        )

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
        delivery = Delivery(self.next_id(), order_id, url, params, copies=max(copies, 1), lost=lost)
        return self.enqueue(delivery, first_delay_s)

    def log(self, order_id: str | None = None) -> list[dict[str, Any]]:
        return self.entries(lambda d: order_id is None or d.order_id == order_id)
