"""Entitlements found wanting by the audit of paid access (tests/…/audit-ent)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from tests import books
from tests.builders import Builders, Shop

LATEST_UNTIL = datetime(9999, 12, 30, tzinfo=UTC)


def _century(build: Builders, shop: Shop) -> dict[str, Any]:
    return build.product(
        shop.app,
        title="Century membership",
        kind="membership",
        period_days=36600,  # the catalog's longest period
        prices=[{"amount": 100, "currency": "CNY"}],
    )


def _order(shop: Shop, product: dict[str, Any], quantity: int) -> dict[str, Any]:
    response = shop.client.post(
        "/v1/orders",
        json={
            "user_id": shop.buyer.id,
            "currency": "CNY",
            "items": [{"product_id": product["id"], "quantity": quantity}],
        },
        headers=shop.app.headers,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_period_past_the_last_representable_day_is_capped_and_the_capture_recorded(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """100 × 36,600 days from 2026 is past year 9999: the capture used to fail with a 500
    (OverflowError), so the gateway's notification was never recorded and the buyer's money
    sat at the gateway with the order unpaid."""
    shop = Shop(build)
    century = _century(build, shop)
    payment = shop.pay(_order(shop, century, 100))
    shop.confirm(payment)  # asserts 200

    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "succeeded"
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert entitlement.valid_until == LATEST_UNTIL
    assert books.violations(database) == []


def test_renewals_that_stack_past_the_last_representable_day_are_capped(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop = Shop(build)
    century = _century(build, shop)
    for _ in range(3):  # 40 × 36,600 days each: the second one already passes year 9999
        payment = shop.pay(_order(shop, century, 40))
        shop.confirm(payment)
        assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "succeeded"
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert entitlement.valid_until == LATEST_UNTIL

    first_order = shop.get(f"/v1/orders?user_id={shop.buyer.id}")["data"][-1]
    refund = shop.client.post(
        "/v1/refunds",
        json={"order_id": first_order["id"], "reason": "other"},
        headers=shop.app.headers,
    )
    assert refund.status_code == 201, refund.text
    [rebuilt] = books.entitlements(database, shop.buyer.id)
    assert rebuilt.valid_until == LATEST_UNTIL
    assert books.violations(database) == []
