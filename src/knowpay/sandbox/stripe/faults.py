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

import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
class Fault:
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """The faults in force; taking one counts it against its `times`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, **spec: Any) -> Fault:
        with self._lock:
            fault = Fault(id=f"fault_{next(self._ids)}", **spec)
            self._faults.append(fault)
            return fault

    def all(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

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
        with self._lock:
            taken: list[Fault] = []
            for fault in self._faults:
                if fault.kind not in kinds:
                    continue
                if fault.out_trade_no is not None and fault.out_trade_no != out_trade_no:
                    continue
                if operation is not None and fault.operations and operation not in fault.operations:
                    continue
                if event_type is not None and fault.types and event_type not in fault.types:
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if limit is not None and len(taken) >= limit:
                    break
                fault.fired += 1
                taken.append(fault)
            return taken
