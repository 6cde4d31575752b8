"""The refund state machine: the only place a refund's status may change."""

from __future__ import annotations

from enum import StrEnum

from knowpay.kit.errors import Conflict


class RefundStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    """Waiting for finance; counts against what is still refundable."""
    PROCESSING = "processing"
    """Sent (or being sent) to the gateway; counts against what is still refundable."""
    SUCCEEDED = "succeeded"
    """The money is back with the buyer (through the gateway, or resolved by finance)."""
    FAILED = "failed"
    """The gateway refused; finance may retry it or resolve it by hand."""
    REJECTED = "rejected"
    """Finance said no, with a reason the buyer sees."""


TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING_APPROVAL: frozenset({RefundStatus.PROCESSING, RefundStatus.REJECTED}),
    RefundStatus.PROCESSING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.FAILED: frozenset({RefundStatus.PROCESSING, RefundStatus.SUCCEEDED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.REJECTED: frozenset(),
}

OPEN = frozenset({RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING})
"""Refunds that hold part of the captured amount."""


class RefundNotPending(Conflict):
    code, title = "refund_not_pending", "The refund cannot make that change now"


def next_status(current: str, target: RefundStatus) -> RefundStatus:
    """`target` if the table allows it from `current`; RefundNotPending otherwise."""
    source = RefundStatus(current)
    if target not in TRANSITIONS[source]:
        raise RefundNotPending(
            f"A refund that is {source} cannot become {target}.", refund_status=source.value
        )
    return target
