"""The payment state machine: the only place a payment's status may change."""

from __future__ import annotations

from enum import StrEnum

from knowpay.kit.errors import Conflict


class PaymentStatus(StrEnum):
    PENDING = "pending"
    """Created at the gateway (or being created); the buyer has not paid yet."""
    SUCCEEDED = "succeeded"
    """The gateway captured the money."""
    FAILED = "failed"
    """The gateway refused, or the attempt could not be made."""
    CLOSED = "closed"
    """Abandoned: another attempt paid the order, or the order was closed."""


# The gateway is the truth about money: a capture it reports for an attempt we had given up on
# (failed or closed here) is still recorded, so those may still become succeeded.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset(
        {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CLOSED}
    ),
    PaymentStatus.FAILED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.CLOSED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.SUCCEEDED: frozenset(),
}


class IllegalPaymentTransition(Conflict):
    code, title = "illegal_payment_transition", "The payment cannot make that change"


def next_status(current: str, target: PaymentStatus) -> PaymentStatus:
    """`target` if the table allows it from `current`; IllegalPaymentTransition otherwise."""
    source = PaymentStatus(current)
    if target not in TRANSITIONS[source]:
        raise IllegalPaymentTransition(f"A payment that is {source} cannot become {target}.")
    return target
