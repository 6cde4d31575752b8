"""The order state machine: the only place an order's status may change."""

from __future__ import annotations

from enum import StrEnum

from knowpay.kit.errors import Conflict


class OrderStatus(StrEnum):
    CREATED = "created"
    """Waiting for payment; nothing captured."""
    PAID = "paid"
    """Captured in full by exactly one payment."""
    PARTIALLY_REFUNDED = "partially_refunded"
    """Part of the captured amount has gone back to the buyer."""
    REFUNDED = "refunded"
    """All of the captured amount has gone back to the buyer."""
    CLOSED = "closed"
    """Closed unpaid (by the app, or on expiry); nothing captured."""


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.PAID, OrderStatus.CLOSED}),
    OrderStatus.PAID: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset(
        {OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}
    ),
    OrderStatus.REFUNDED: frozenset(),
    OrderStatus.CLOSED: frozenset(),
}


class IllegalOrderTransition(Conflict):
    code, title = "illegal_order_transition", "The order cannot make that change"


def next_status(current: str, target: OrderStatus) -> OrderStatus:
    """`target` if the table allows it from `current`; IllegalOrderTransition otherwise."""
    source = OrderStatus(current)
    if target not in TRANSITIONS[source]:
        raise IllegalOrderTransition(f"An order that is {source} cannot become {target}.")
    return target
