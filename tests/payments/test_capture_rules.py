"""What `record_capture` refuses and how it books a capture the order no longer wants."""

from __future__ import annotations

import pytest

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.ledger.accounts import DUPLICATE_PAYMENTS_PAYABLE, PLATFORM_REVENUE, channel_clearing
from knowpay.payments import service as payments
from knowpay.payments.errors import AmountMismatch
from tests import books
from tests.builders import Builders, Shop


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def test_a_capture_of_the_right_amount_in_another_currency_is_refused_and_books_nothing(
    shop: Shop, database: Database, clock: FrozenClock
) -> None:
    order = shop.order()
    payment = shop.pay(order)
    with pytest.raises(AmountMismatch), database.session_scope() as session:
        payments.record_capture(
            session, payment["id"], Money(9900, "USD"), payment["gateway_trade_no"], clock.now()
        )
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "pending"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert books.entries(database) == []
    assert books.entitlements(database, shop.buyer.id) == []


def test_a_capture_for_an_order_closed_unpaid_is_a_duplicate_owed_back_not_a_sale(
    shop: Shop, database: Database, clock: FrozenClock
) -> None:
    """The buyer paid at the gateway just as the order closed: the money is recorded, but it
    pays nothing, grants nothing, and is owed back to the buyer."""
    order = shop.order()
    payment = shop.pay(order)
    closed = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.json()["status"] == "closed"
    with database.session_scope() as session:
        outcome = payments.record_capture(
            session, payment["id"], Money(9900, "CNY"), payment["gateway_trade_no"], clock.now()
        )
    assert outcome is payments.CaptureOutcome.DUPLICATE
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "closed"
    captured = shop.get(f"/v1/payments/{payment['id']}")
    assert (captured["status"], captured["is_duplicate"]) == ("succeeded", True)
    assert books.account_balance(database, DUPLICATE_PAYMENTS_PAYABLE) == -9900
    assert books.account_balance(database, channel_clearing("test")) == 9900
    assert books.account_balance(database, PLATFORM_REVENUE) == 0
    assert books.entitlements(database, shop.buyer.id) == []
    assert books.events(database, "order.paid") == []
    assert books.violations(database) == []
