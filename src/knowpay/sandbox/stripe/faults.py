"""Fault injection: what can go wrong between Stripe and a merchant, per trade or for all.

Webhook faults act when an event is sent (optionally only for some event `types`):
`lost` (never sent), `duplicate` (each attempt sent `count` times at once), `delayed`
(first attempt after `delay_s` real seconds), `forged_signature` (signed with a secret that
is not the endpoint's), `stale_signature` (signed `seconds` in the past: a replay),
`tampered_amount` (Stripe signs an event whose amounts are `amount`).
API faults act on API calls (optionally only some `operations`, e.g. `create_payment_intent`):
`http_5xx` (answer `status` without doing anything), `timeout` (do the work, answer only after
`seconds`). `slow_refund` keeps the refunds created while it is in force `pending` for
`seconds`, then settles them with `refund_outcome` (a refund.updated event).
`out_trade_no` limits a fault to one trade (the PaymentIntent's metadata[out_trade_no]);
`times` limits how often it fires (None: until removed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from knowpay.sandbox.common import faults as common

FaultKind = Literal[
    "lost",
    "duplicate",
    "delayed",
    "forged_signature",
    "stale_signature",
    "tampered_amount",
    "http_5xx",
    "timeout",
    "slow_refund",
]
WEBHOOK_FAULTS = frozenset(
    {"lost", "duplicate", "delayed", "forged_signature", "stale_signature", "tampered_amount"}
)
API_FAULTS = frozenset({"http_5xx", "timeout"})
REFUND_FAULTS = frozenset({"slow_refund"})


@dataclass
class Fault(common.AsDict):
    id: str
    kind: FaultKind
    out_trade_no: str | None = None
    times: int | None = None
    count: int = 10
    delay_s: float = 1.0
    status: int = 500
    seconds: float = 30.0
    amount: int = 1
    operations: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    refund_outcome: Literal["succeeded", "failed"] = "succeeded"
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
        event_type: str | None = None,
        limit: int | None = None,
    ) -> list[Fault]:
        """The matching faults in force (the first `limit`), each counted as fired."""

        def match(fault: Fault) -> bool:
            return (
                common.one(fault.out_trade_no, out_trade_no)
                and common.listed(fault.operations, operation)
                and common.listed(fault.types, event_type)
            )

        return self._take(kinds, match, limit)
