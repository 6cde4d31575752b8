"""The fault book every simulator keeps: faults added, listed, removed and cleared through the
control routes, and taken (counted against their `times`) where the gateway acts on them.

Each gateway declares its own Fault dataclass (its kinds and their parameters, in the order
its /_faults JSON lists them) and says how a fault is scoped (to a trade, an operation, an
event type...) with the `match` predicate it passes to `take`."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar


class Fault(Protocol):
    """What the book needs of a gateway's fault (a dataclass built from the control JSON)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def times(self) -> int | None: ...

    fired: int


F = TypeVar("F", bound=Fault)


@dataclass
class AsDict:
    """A dataclass mixin: the fault as the control routes show it."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook(Generic[F]):
    """The faults in force; taking one counts it against its `times`."""

    def __init__(self, make: Callable[..., F]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._faults: list[F] = []
        self._ids = itertools.count(1)

    def add(self, **spec: Any) -> F:
        with self._lock:
            fault = self._make(id=f"fault_{next(self._ids)}", **spec)
            self._faults.append(fault)
            return fault

    def all(self) -> list[F]:
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

    def _take(
        self, kinds: frozenset[str], match: Callable[[F], bool], limit: int | None
    ) -> list[F]:
        """The faults of these kinds in force that `match` (the first `limit`), each counted
        as fired."""
        with self._lock:
            taken: list[F] = []
            for fault in self._faults:
                if fault.kind not in kinds or not match(fault):
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if limit is not None and len(taken) >= limit:
                    break
                fault.fired += 1
                taken.append(fault)
            return taken


def one(scope: str | None, value: str | None) -> bool:
    """Whether a fault for one trade (`scope`; None: every trade) applies to `value`'s."""
    return scope is None or scope == value


def listed(allowed: list[str], value: str | None) -> bool:
    """Whether a fault limited to `allowed` names (none: every name) applies to `value` (None:
    a call that has no such name)."""
    return value is None or not allowed or value in allowed
