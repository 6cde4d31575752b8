"""Fault injection: what can go wrong between Alipay and a merchant, per trade or for all.

Notification faults act when a notification is created (a trade is paid, closed, refunded):
`lost` (never sent), `duplicate` (each attempt sent `count` times at once), `delayed`
(first attempt after `delay_s` real seconds), `tampered_amount` / `tampered_fields` (the
gateway signs different values), `forged_signature` (signed with a key that is not Alipay's),
`out_of_order` (the trade's notifications are held for `delay_s` real seconds from the first,
then sent newest first: e.g. TRADE_FINISHED before TRADE_SUCCESS).
API faults act on gateway.do calls (optionally only `methods`): `http_5xx` (answer `status`),
`timeout` (answer only after `seconds`, having done the work). `times` limits how often a
fault fires (None: until removed)."""

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
    "out_of_order",
    "http_5xx",
    "timeout",
]
NOTIFICATION_FAULTS = frozenset(
    {
        "lost",
        "duplicate",
        "delayed",
        "tampered_amount",
        "tampered_fields",
        "forged_signature",
        "out_of_order",
    }
)
API_FAULTS = frozenset({"http_5xx", "timeout"})


@dataclass
class Fault(common.AsDict):
    id: str
    kind: FaultKind
    out_trade_no: str | None = None
    """Only this trade; None for every trade."""
    times: int | None = None
    count: int = 10
    delay_s: float = 1.0
    amount: str = "0.01"
    fields: dict[str, str] = field(default_factory=dict)
    status: int = 503
    seconds: float = 30.0
    methods: list[str] = field(default_factory=list)
    fired: int = 0


class FaultBook(common.FaultBook[Fault]):
    """The faults in force; taking one counts it against its `times`."""

    def __init__(self) -> None:
        super().__init__(Fault)

    def take(
        self,
        kinds: frozenset[str],
        out_trade_no: str | None,
        method: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[Fault]:
        """The matching faults in force (the first `limit` of them), each counted as fired."""
        return self._take(
            kinds,
            lambda f: common.one(f.out_trade_no, out_trade_no) and common.listed(f.methods, method),
            limit,
        )
