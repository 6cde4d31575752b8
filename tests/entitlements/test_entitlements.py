"""Entitlements: granted only by a payment; memberships extend from the current end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from tests import books
from tests.builders import Builders, Shop


def test_a_membership_renewal_extends_from_the_current_end(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop = Shop(build)
    membership = build.product(
        shop.app,
        title="年度会员",
        kind="membership",
        period_days=30,
        prices=[{"amount": 3000, "currency": "CNY"}],
    )
    shop.confirm(shop.pay(shop.order(membership)))
    [first] = books.entitlements(database, shop.buyer.id)
    assert first.valid_until == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)

    clock.advance(timedelta(days=10))
    shop.confirm(shop.pay(shop.order(membership)))
    [renewed] = books.entitlements(database, shop.buyer.id)
    assert renewed.id == first.id
    assert renewed.valid_from == first.valid_from
    assert renewed.valid_until == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 31 Jan + 30 days

    clock.advance(timedelta(days=90))  # lapsed: a new period starts now
    shop.confirm(shop.pay(shop.order(membership)))
    [restarted] = books.entitlements(database, shop.buyer.id)
    assert restarted.valid_from == clock.now()
    assert restarted.valid_until == clock.now() + timedelta(days=30)
    assert books.violations(database) == []


def test_quantity_buys_several_periods(build: Builders, database: Database) -> None:
    shop = Shop(build)
    membership = build.product(
        shop.app, kind="membership", period_days=30, prices=[{"amount": 3000, "currency": "CNY"}]
    )
    order = shop.client.post(
        "/v1/orders",
        json={
            "user_id": shop.buyer.id,
            "currency": "CNY",
            "items": [{"product_id": membership["id"], "quantity": 12}],
        },
        headers=shop.app.headers,
    ).json()
    shop.confirm(shop.pay(order))
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert entitlement.valid_until is not None
    assert entitlement.valid_until - entitlement.valid_from == timedelta(days=360)


def test_no_entitlement_before_the_payment_succeeds(build: Builders, database: Database) -> None:
    shop = Shop(build)
    payment = shop.pay(shop.order())
    assert books.entitlements(database, shop.buyer.id) == []
    shop.confirm(payment, outcome="failed")
    assert books.entitlements(database, shop.buyer.id) == []


def test_only_the_app_or_the_buyer_records_an_opening_and_strangers_change_nothing(
    build: Builders, database: Database
) -> None:
    """The first opening decides automatic refunds: staff looking, or another app or buyer
    guessing an id, must not set it."""
    shop = Shop(build)
    shop.confirm(shop.pay(shop.order()))
    [entitlement] = books.entitlements(database, shop.buyer.id)
    path = f"/v1/entitlements/{entitlement.id}/access"
    other = Shop(build)
    for stranger in (other.app, other.buyer):
        assert shop.client.post(path, headers=stranger.headers).status_code == 404
    support = build.staff(Role.SUPPORT)
    assert shop.client.post(path, headers=support.headers).status_code == 403
    [untouched] = books.entitlements(database, shop.buyer.id)
    assert untouched.first_accessed_at is None
    opened = shop.client.post(path, headers=shop.buyer.headers)
    assert opened.status_code == 200, opened.text
    [noted] = books.entitlements(database, shop.buyer.id)
    assert noted.first_accessed_at is not None
