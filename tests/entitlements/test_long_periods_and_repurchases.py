"""Periods too long to represent, and content bought again after a refund took it away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from knowpay.auth.principals import Role
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


def test_a_period_past_the_last_representable_day_is_capped_and_the_capture_recorded(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """100 × 36,600 days from 2026 is past year 9999: the capture used to fail with a 500
    (OverflowError), so the gateway's notification was never recorded and the buyer's money
    sat at the gateway with the order unpaid."""
    shop = Shop(build)
    century = _century(build, shop)
    payment = shop.pay(shop.order(items=[{"product_id": century["id"], "quantity": 100}]))
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
        payment = shop.pay(shop.order(items=[{"product_id": century["id"], "quantity": 40}]))
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


def test_content_bought_again_after_a_full_refund_counts_as_never_opened_until_opened(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """The refund policy approves a refund automatically when the content "was never opened".
    A purchase refunded in full and bought again kept the first purchase's opening, so a
    refund of the new purchase, never opened, waited for finance."""
    shop = Shop(build)
    big = build.product(shop.app, prices=[{"amount": 50000, "currency": "CNY"}])  # > auto max
    first = shop.order(big)
    shop.confirm(shop.pay(first))
    [entitlement] = books.entitlements(database, shop.buyer.id)
    opened = shop.client.post(
        f"/v1/entitlements/{entitlement.id}/access", headers=shop.buyer.headers
    )
    assert opened.status_code == 200, opened.text
    asked = shop.client.post(
        "/v1/refunds", json={"order_id": first["id"], "reason": "other"}, headers=shop.app.headers
    )
    assert asked.json()["status"] == "pending_approval"  # opened and large: finance decides
    finance = build.staff(Role.FINANCE)
    approved = shop.client.post(
        f"/v1/refunds/{asked.json()['id']}/approve", json={}, headers=finance.headers
    )
    assert approved.json()["status"] == "succeeded", approved.text

    clock.advance(timedelta(days=1))
    second = shop.order(big)
    shop.confirm(shop.pay(second))
    [again] = books.entitlements(database, shop.buyer.id)
    assert (again.revoked_at, again.first_accessed_at) == (None, None)
    refund = shop.client.post(
        "/v1/refunds", json={"order_id": second["id"], "reason": "other"}, headers=shop.app.headers
    )
    assert refund.json()["status"] == "succeeded", refund.json()  # never opened: automatic
    assert books.violations(database) == []


def test_an_opening_of_content_the_buyer_no_longer_has_is_refused_and_changes_nothing(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """The buyer center refuses to open revoked or expired content (403); the API noted the
    opening all the same, as if the buyer had used content they no longer had."""
    shop = Shop(build)
    course = shop.order()
    shop.confirm(shop.pay(course))
    refunded = shop.client.post(
        "/v1/refunds", json={"order_id": course["id"], "reason": "other"}, headers=shop.app.headers
    )
    assert refunded.json()["status"] == "succeeded"
    membership = build.product(
        shop.app, kind="membership", period_days=7, prices=[{"amount": 800, "currency": "CNY"}]
    )
    shop.confirm(shop.pay(shop.order(membership)))
    clock.advance(timedelta(days=7))  # ends exactly now: no longer in force
    buyer = build.relogin(shop.buyer)
    for entitlement in books.entitlements(database, shop.buyer.id):
        for caller in (shop.app, buyer):
            answer = shop.client.post(
                f"/v1/entitlements/{entitlement.id}/access", headers=caller.headers
            )
            assert answer.status_code == 409, answer.text
            assert answer.json()["code"] == "entitlement_not_active"
    assert [e.first_accessed_at for e in books.entitlements(database, shop.buyer.id)] == [
        None,
        None,
    ]
