"""Reading payments: by id, as a caller may see them, duplicates (and tying one to its
refund), and an attempt with its order, locked."""

from __future__ import annotations

from sqlalchemy.orm import Session

from knowpay.auth.principals import Principal
from knowpay.kit.pagination import PageParams
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderNotFound
from knowpay.orders.models import Order
from knowpay.payments import repository
from knowpay.payments.errors import PaymentNotFound
from knowpay.payments.models import Payment
from knowpay.payments.service._shared import _lock_order_then_payment, _require


def lock_order_then_payment(session: Session, payment_id: str) -> tuple[Order, Payment]:
    """The attempt and its order, locked in the one order every flow uses."""
    return _lock_order_then_payment(session, payment_id)


def get_payment(session: Session, payment_id: str) -> Payment:
    """A payment by id (PaymentNotFound otherwise)."""
    return _require(session, payment_id)


def list_duplicates(session: Session, params: PageParams) -> tuple[list[Payment], bool]:
    """Every duplicate capture, newest first."""
    return repository.list_duplicates(session, params)


def unrefunded_duplicates(session: Session, limit: int) -> list[Payment]:
    """Duplicate captures that no refund has been started for yet."""
    return repository.unrefunded_duplicates(session, limit)


def claim_duplicate_for_refund(session: Session, payment_id: str, refund_id: str) -> bool:
    """Tie a duplicate capture to its refund; False if another worker did it first."""
    return repository.claim_duplicate(session, payment_id, refund_id)


def get_visible(session: Session, caller: Principal, payment_id: str) -> Payment:
    """A payment the caller may see (through its order); 404 otherwise."""
    payment = repository.get(session, payment_id)
    if payment is None:
        raise PaymentNotFound(f"No such payment: {payment_id}")
    try:
        orders.get_visible(session, caller, payment.order_id)
    except OrderNotFound as exc:
        raise PaymentNotFound(f"No such payment: {payment_id}") from exc
    return payment


def get_for_return(session: Session, payment_id: str) -> Payment:
    """The payment a gateway sends a browser back for (no caller: the id is all we have)."""
    return _require(session, payment_id)
