"""Fault injection: what can go wrong between UnionPay and a merchant, per consume or for all.

A fault names a consume by its `order_id` (a refund's faults are its consume's). Notification
faults act when a back notification is made (a consume paid, a refund done): `lost` (never
sent), `duplicate` (each send made `count` times at once), `delayed` (first send after
`delay_s` real seconds), `tampered_amount` (txnAmt becomes `amount` fen, correctly signed),
`tampered_fields` (`fields` changed, correctly signed), and the signature faults:
`forged_signature` (signed with a key that is not signPubKeyCert's), `untrusted_cert`
(signPubKeyCert from a CA that is not UnionPay's), `expired_cert`, `wrong_cn` (a certificate
of UnionPay's CA owned by someone else). With `target: "response"` the signature faults act
on synchronous answers instead. API faults act on calls to the gateway (optionally only to
`endpoints`, e.g. `backTransReq.do`): `http_5xx` (answer `status` without doing anything),
`timeout` (do the work, answer after `seconds`). `times` limits how often a fault fires."""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "lost",
    "duplicate",
    "delayed",
    "tampered_amount",
    "tampered_fields",
    "forged_signature",
    "untrusted_cert",
    "expired_cert",
    "wrong_cn",
    "http_5xx",
    "timeout",
]
Target = Literal["notification", "response"]
SIGNATURE_FAULTS = frozenset({"forged_signature", "untrusted_cert", "expired_cert", "wrong_cn"})
NOTIFICATION_FAULTS = frozenset(
    {"lost", "duplicate", "delayed", "tampered_amount", "tampered_fields"} | SIGNATURE_FAULTS
)
API_FAULTS = frozenset({"http_5xx", "timeout"})


@dataclass
class Fault:
    id: str
    kind: FaultKind
    order_id: str | None = None
    """Only this consume (and its refunds); None for all."""
    times: int | None = None
    count: int = 10
    delay_s: float = 1.0
    amount: str = "1"
    fields: dict[str, str] = field(default_factory=dict)
    status: int = 503
    seconds: float = 30.0
    endpoints: list[str] = field(default_factory=list)
    target: Target = "notification"
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
        order_id: str | None,
        *,
        endpoint: str | None = None,
        target: Target = "notification",
        limit: int | None = None,
    ) -> list[Fault]:
        """The matching faults in force (the first `limit`), each counted as fired."""
        with self._lock:
            taken: list[Fault] = []
            for fault in self._faults:
                if fault.kind not in kinds:
                    continue
                if fault.kind in SIGNATURE_FAULTS and fault.target != target:
                    continue
                if fault.order_id is not None and fault.order_id != order_id:
                    continue
                if endpoint is not None and fault.endpoints and endpoint not in fault.endpoints:
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if limit is not None and len(taken) >= limit:
                    break
                fault.fired += 1
                taken.append(fault)
            return taken
