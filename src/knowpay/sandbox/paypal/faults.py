"""Fault injection: what can go wrong between PayPal and a merchant, for one payment
(`out_trade_no` = the order's invoice_id) or for all.

Webhook faults act when an event is created (optionally only for `events`): `lost` (never
sent), `duplicate` (each try sent `count` times at once), `delayed` (first try after
`delay_s` real seconds), `forged_signature` (signed with a key that is not the
certificate's), `wrong_webhook_id` (signed for another webhook), `tampered_body` (the body
changed after signing), `foreign_cert_url` (PAYPAL-CERT-URL names a host that is not
PayPal's).
API faults act on REST calls (optionally only `operations`, PayPal's operation ids such as
`orders.create`, `orders.capture`, `captures.refund`, `oauth2.token`): `http_5xx` (answer
`status` without doing the work), `timeout` (do the work, answer after `seconds`).
Outcome faults shape PayPal's answer: `capture_declined` (the capture is DECLINED),
`instrument_declined` (capture answers 422 INSTRUMENT_DECLINED, the order stays APPROVED),
`capture_pending`, `refund_pending` (PENDING until completed through the control routes).
`times` limits how often a fault fires (None: until removed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from knowpay.sandbox.common import faults as common

FaultKind = Literal[
    "lost",
    "duplicate",
    "delayed",
    "forged_signature",
    "wrong_webhook_id",
    "tampered_body",
    "foreign_cert_url",
    "http_5xx",
    "timeout",
    "capture_declined",
    "instrument_declined",
    "capture_pending",
    "refund_pending",
]
WEBHOOK_FAULTS = frozenset(
    {
        "lost",
        "duplicate",
        "delayed",
        "forged_signature",
        "wrong_webhook_id",
        "tampered_body",
        "foreign_cert_url",
    }
)
API_FAULTS = frozenset({"http_5xx", "timeout"})
CAPTURE_FAULTS = frozenset({"capture_declined", "instrument_declined", "capture_pending"})
OPERATIONS = frozenset(
    {
        "oauth2.token",
        "orders.create",
        "orders.get",
        "orders.patch",
        "orders.capture",
        "captures.get",
        "captures.refund",
        "refunds.get",
        "webhooks.verify-signature",
        "transactions.list",
    }
)


@dataclass
class Fault(common.AsDict):
    id: str
    kind: FaultKind
    out_trade_no: str | None = None
    """Only this payment (the order's invoice_id); None for every one."""
    times: int | None = None
    count: int = 10
    delay_s: float = 1.0
    status: int = 503
    seconds: float = 30.0
    operations: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    fired: int = 0


class FaultBook(common.FaultBook[Fault]):
    """The faults in force; taking one counts it against its `times`."""

    def __init__(self) -> None:
        super().__init__(Fault)

    def take(
        self,
        kinds: frozenset[str],
        out_trade_no: str | None,
        *,
        operation: str | None = None,
        event: str | None = None,
        limit: int | None = None,
    ) -> list[Fault]:
        """The matching faults in force (the first `limit`), each counted as fired."""

        def match(fault: Fault) -> bool:
            return (
                common.one(fault.out_trade_no, out_trade_no)
                and common.listed(fault.operations, operation)
                and common.listed(fault.events, event)
            )

        return self._take(kinds, match, limit)
