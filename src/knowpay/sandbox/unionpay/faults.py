"""Fault injection: what can go wrong between UnionPay and a merchant, per consume or for all.

A fault names a consume by its `order_id` (a refund's faults are its consume's). Notification
faults act when a back notification is made (a consume paid, a refund done): `lost` (never
sent), `duplicate` (each send made `count` times at once), `delayed` (first send after
`delay_s` real seconds), `tampered_amount` (txnAmt becomes `amount` fen, correctly signed),
`tampered_fields` (`fields` changed, correctly signed), and the signature faults:
`forged_signature` (signed with a key that is not signPubKeyCert's), `untrusted_cert`
(signPubKeyCert from a CA that is not UnionPay's), `expired_cert`, `wrong_cn` (a certificate
of UnionPay's CA owned by someone else). With `target: "response"` the signature faults act
on synchronous answers instead, and so does `tampered_fields` (e.g. a file transfer's
`fileContent` that is no file, correctly signed). API faults act on calls to the gateway
(optionally only to `endpoints`, e.g. `backTransReq.do`): `http_5xx` (answer `status`
without doing anything), `timeout` (do the work, answer after `seconds`). `times` limits how
often a fault fires."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from knowpay.sandbox.common import faults as common

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
TARGETED_FAULTS = SIGNATURE_FAULTS | {"tampered_fields"}
"""Faults that act on notifications or, with `target: "response"`, on synchronous answers."""


@dataclass
class Fault(common.AsDict):
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


class FaultBook(common.FaultBook[Fault]):
    """The faults in force; taking one counts it against its `times`."""

    def __init__(self) -> None:
        super().__init__(Fault)

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

        def match(fault: Fault) -> bool:
            return (
                (fault.kind not in TARGETED_FAULTS or fault.target == target)
                and common.one(fault.order_id, order_id)
                and common.listed(fault.endpoints, endpoint)
            )

        return self._take(kinds, match, limit)
