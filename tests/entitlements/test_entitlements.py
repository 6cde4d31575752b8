"""Entitlements: granted only by a payment; memberships extend from the current end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import select

from knowpay.auth.principals import Role
from knowpay.entitlements.models import EntitlementGrant
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.migrations import alembic_config, upgrade
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


def _refund_in_full(shop: Shop, order: dict[str, Any]) -> None:
    response = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "accidental_purchase"},
        headers=shop.app.headers,
    )
    assert response.json()["status"] == "succeeded", response.json()


def _bought_twice(
    build: Builders, clock: FrozenClock, **product: Any
) -> tuple[Shop, dict[str, Any], dict[str, Any]]:
    """One buyer pays two orders of the same product, a day apart."""
    shop = Shop(build)
    bought = build.product(shop.app, prices=[{"amount": 3000, "currency": "CNY"}], **product)
    first = shop.order(bought)
    shop.confirm(shop.pay(first))
    clock.advance(timedelta(days=1))
    second = shop.order(bought)
    shop.confirm(shop.pay(second))
    return shop, first, second


def test_refunding_the_first_of_two_membership_payments_leaves_what_the_second_bought(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop, first, second = _bought_twice(build, clock, kind="membership", period_days=30)
    [both] = books.entitlements(database, shop.buyer.id)
    assert both.valid_until == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 60 days

    _refund_in_full(shop, first)

    [left] = books.entitlements(database, shop.buyer.id)
    assert left.revoked_at is None
    paid_second = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert (left.valid_from, left.valid_until) == (paid_second, paid_second + timedelta(days=30))
    assert left.payment_id == shop.get(f"/v1/orders/{second['id']}")["payment_id"]
    assert books.violations(database) == []


def test_refunding_the_second_of_two_membership_payments_leaves_what_the_first_bought(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop, first, second = _bought_twice(build, clock, kind="membership", period_days=30)

    _refund_in_full(shop, second)

    [left] = books.entitlements(database, shop.buyer.id)
    assert left.revoked_at is None
    assert left.valid_until == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert left.payment_id == shop.get(f"/v1/orders/{first['id']}")["payment_id"]
    listed = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    assert [(e["valid_until"], e["revoked_at"]) for e in listed] == [("2026-01-31T12:00:00Z", None)]
    assert books.violations(database) == []


def test_a_course_bought_twice_stays_open_when_one_purchase_is_refunded_and_closes_with_both(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop, first, second = _bought_twice(build, clock, kind="course")

    _refund_in_full(shop, second)
    [kept] = books.entitlements(database, shop.buyer.id)
    assert (kept.revoked_at, kept.valid_until) == (None, None)

    _refund_in_full(shop, first)
    [gone] = books.entitlements(database, shop.buyer.id)
    assert gone.revoked_at == clock.now()
    assert books.violations(database) == []


def test_each_change_to_an_entitlement_carries_a_later_updated_at_even_at_one_moment(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """Its events come from different orders, so a platform may get them out of order (a
    revocation retried after the next purchase's grant): the later `updated_at` stands,
    even when the clock did not move between the changes."""
    shop = Shop(build)
    course = build.product(shop.app, kind="course", prices=[{"amount": 3000, "currency": "CNY"}])
    first = shop.order(course)
    shop.confirm(shop.pay(first))
    _refund_in_full(shop, first)
    second = shop.order(course)
    shop.confirm(shop.pay(second))

    changes = [
        (e["type"], e["data"]["object"]["updated_at"])
        for e in books.events(database)
        if e["type"].startswith("entitlement.")
    ]
    assert [kind for kind, _ in changes] == [
        "entitlement.granted",
        "entitlement.revoked",
        "entitlement.granted",
    ]
    times = [datetime.fromisoformat(at) for _, at in changes]
    assert times == sorted(set(times))  # strictly later each time, the clock frozen
    [now_listed] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    assert now_listed["updated_at"] == changes[-1][1]
    assert now_listed["revoked_at"] is None


def _grants(database: Database) -> dict[str, tuple[str, int | None, datetime | None]]:
    with database.session_scope() as session:
        return {
            g.id: (g.order_id, g.days, g.revoked_at)
            for g in session.scalars(select(EntitlementGrant)).all()
        }


def test_the_migration_gives_existing_grants_their_days_and_the_refunds_that_took_them_back(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    _, m1, m2 = _bought_twice(build, clock, kind="membership", period_days=30)
    twice, c1, c2 = _bought_twice(build, clock, kind="course")
    _refund_in_full(twice, c1)  # the entitlement stays: the order says what was taken back
    once = Shop(build)
    single = once.order()
    once.confirm(once.pay(single))
    clock.advance(timedelta(hours=1))
    _refund_in_full(once, single)  # revoked: the entitlement says when
    before = _grants(database)
    by_order = {order_id: (days, revoked) for order_id, days, revoked in before.values()}
    assert by_order == {
        m1["id"]: (30, None),
        m2["id"]: (30, None),
        c1["id"]: (None, datetime(2026, 1, 3, 12, 0, tzinfo=UTC)),
        c2["id"]: (None, None),
        single["id"]: (None, datetime(2026, 1, 3, 13, 0, tzinfo=UTC)),
    }

    command.downgrade(alembic_config(database.engine), "20261127_0012")  # as grants were
    upgrade(database.engine)

    assert _grants(database) == before
    assert books.violations(database) == []


def test_a_buyers_entitlements_page_by_the_limit_and_cursor_of_each_request(
    build: Builders,
) -> None:
    """The list's statement is built once: each request's buyer, limit and cursor are its
    own (a statement that kept the first request's would page the wrong buyer or size)."""
    shop = Shop(build)
    courses = [
        build.product(shop.app, title=f"Course {n}", prices=[{"amount": 100, "currency": "CNY"}])
        for n in range(3)
    ]
    for course in courses:
        shop.confirm(shop.pay(shop.order(course)))
    other = build.buyer(shop.app)
    other_order = shop.order(courses[0], user_id=other.id)
    shop.confirm(shop.pay(other_order))

    newest_first = [c["id"] for c in reversed(courses)]
    first = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}&limit=2")
    assert [e["product_id"] for e in first["data"]] == newest_first[:2]
    assert first["has_more"] is True
    cursor = first["data"][-1]["id"]
    rest = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}&limit=2&starting_after={cursor}")
    assert [e["product_id"] for e in rest["data"]] == newest_first[2:]
    assert rest["has_more"] is False
    one = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}&limit=1")
    assert [e["product_id"] for e in one["data"]] == newest_first[:1]
    theirs = shop.get(f"/v1/entitlements?user_id={other.id}&limit=2")
    assert [(e["user_id"], e["product_id"]) for e in theirs["data"]] == [
        (other.id, courses[0]["id"])
    ]
    assert theirs["has_more"] is False
