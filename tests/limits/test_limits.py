"""Spending limits: per transaction, day and month; per buyer level, app and channel; counted
atomically when a payment starts, given back when an order closes unpaid; `limit.near`
once per period at 80%."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.limits import service as limits
from knowpay.limits.models import LimitReservation, LimitUsage
from tests import books
from tests.builders import Builders, Caller, Shop

_SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


@pytest.fixture
def finance(build: Builders) -> Caller:
    return build.staff(Role.FINANCE)


def add_limit(client: TestClient, finance: Caller, **body: Any) -> dict[str, Any]:
    answer = client.post(
        "/v1/admin/limits", json={"currency": "CNY", **body}, headers=finance.headers
    )
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def priced(shop: Shop, amount: int) -> dict[str, Any]:
    return shop.build.product(shop.app, prices=[{"amount": amount, "currency": "CNY"}])


def try_to_pay(shop: Shop, order: dict[str, Any], **body: Any) -> Any:
    return shop.build.client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "test", **body},
        headers=shop.app.headers,
    )


def test_a_payment_above_the_single_payment_limit_is_refused_and_nothing_is_written(
    shop: Shop, client: TestClient, finance: Caller, database: Database
) -> None:
    limit = add_limit(client, finance, scope="buyer", period="transaction", amount=10000)
    assert try_to_pay(shop, shop.order(priced(shop, 10000))).status_code == 201
    order = shop.order(priced(shop, 10001))
    refused = try_to_pay(shop, order)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "limit_exceeded"
    assert problem["limit"] == {
        "id": limit["id"],
        "scope": "buyer",
        "period": "transaction",
        "amount": 10000,
        "currency": "CNY",
    }
    assert problem["remaining"] == 10000
    assert shop.get(f"/v1/orders/{order['id']}/payments")["data"] == []


def test_a_daily_limit_per_buyer_level_counts_each_order_once_and_says_what_remains(
    shop: Shop, client: TestClient, finance: Caller, clock: FrozenClock
) -> None:
    add_limit(client, finance, scope="buyer", period="day", buyer_level="unverified", amount=50000)
    add_limit(client, finance, scope="buyer", period="day", buyer_level="verified", amount=500000)
    course = priced(shop, 20000)
    first, second = shop.order(course), shop.order(course)
    assert try_to_pay(shop, first).status_code == 201
    assert try_to_pay(shop, first).status_code == 201  # a retry of one order counts once
    assert try_to_pay(shop, second).status_code == 201
    third = shop.order(course)
    refused = try_to_pay(shop, third)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert (problem["limit"]["period"], problem["remaining"]) == ("day", 10000)
    local_day = clock.now().astimezone(_SHANGHAI).date()
    assert problem["period_key"] == local_day.isoformat()
    next_midnight = datetime.combine(local_day + timedelta(days=1), datetime.min.time(), _SHANGHAI)
    assert datetime.fromisoformat(problem["resets_at"]) == next_midnight.astimezone(UTC)
    assert problem["resets_at"].endswith("Z")  # as API.md writes times
    assert "daily limit of" in problem["detail"]

    promoted = client.put(
        f"/v1/admin/users/{shop.buyer.id}/level",
        json={"level": "verified"},
        headers=finance.headers,
    )
    assert promoted.status_code == 200, promoted.text
    assert try_to_pay(shop, third).status_code == 201  # verified buyers may spend ¥5,000

    clock.advance(timedelta(days=1))  # a new day: the unverified allowance is whole again
    other = shop.build.buyer(shop.app)
    for _ in range(2):
        order = shop.build.client.post(
            "/v1/orders",
            json={"user_id": other.id, "items": [{"product_id": course["id"]}], "currency": "CNY"},
            headers=shop.app.headers,
        ).json()
        assert try_to_pay(shop, order).status_code == 201


def test_closing_an_unpaid_order_gives_its_allowance_back(
    shop: Shop, client: TestClient, finance: Caller
) -> None:
    add_limit(client, finance, scope="buyer", period="day", amount=30000)
    course = priced(shop, 20000)
    first = shop.order(course)
    assert try_to_pay(shop, first).status_code == 201
    assert try_to_pay(shop, shop.order(course)).status_code == 422
    closed = client.post(f"/v1/orders/{first['id']}/close", headers=shop.app.headers)
    assert closed.status_code == 200, closed.text
    assert try_to_pay(shop, shop.order(course)).status_code == 201


def test_a_paid_order_keeps_its_allowance(shop: Shop, client: TestClient, finance: Caller) -> None:
    add_limit(client, finance, scope="buyer", period="month", amount=30000)
    course = priced(shop, 20000)
    shop.confirm(shop.pay(shop.order(course)))
    refused = try_to_pay(shop, shop.order(course))
    assert (refused.status_code, refused.json()["limit"]["period"]) == (422, "month")


def test_app_and_channel_limits_count_across_buyers(
    shop: Shop, client: TestClient, finance: Caller
) -> None:
    add_limit(client, finance, scope="app", period="day", app_id=shop.app.id, amount=50000)
    add_limit(client, finance, scope="channel", period="transaction", channel="test", amount=40000)
    course = priced(shop, 20000)
    buyers = [shop.build.buyer(shop.app) for _ in range(3)]
    statuses = []
    for buyer in buyers:
        order = shop.build.client.post(
            "/v1/orders",
            json={"user_id": buyer.id, "items": [{"product_id": course["id"]}], "currency": "CNY"},
            headers=shop.app.headers,
        ).json()
        answer = try_to_pay(shop, order)
        statuses.append((answer.status_code, answer.json().get("limit", {}).get("scope")))
    assert statuses == [(201, None), (201, None), (422, "app")]
    big = shop.order(priced(shop, 40001))
    assert try_to_pay(shop, big).json()["limit"]["scope"] == "channel"
    another_app = shop.build.app("mobile")  # the app limit names one app: others are free
    product = shop.build.product(another_app, prices=[{"amount": 20000, "currency": "CNY"}])
    buyer = shop.build.buyer(another_app)
    for _ in range(3):
        order = shop.build.client.post(
            "/v1/orders",
            json={"user_id": buyer.id, "items": [{"product_id": product["id"]}], "currency": "CNY"},
            headers=another_app.headers,
        ).json()
        paid = shop.build.client.post(
            f"/v1/orders/{order['id']}/payments",
            json={"channel": "test"},
            headers=another_app.headers,
        )
        assert paid.status_code == 201, paid.text


def test_limits_in_one_currency_do_not_count_another(
    shop: Shop, client: TestClient, finance: Caller
) -> None:
    add_limit(client, finance, scope="buyer", period="transaction", amount=100)
    usd = shop.build.product(shop.app, prices=[{"amount": 5000, "currency": "USD"}])
    assert try_to_pay(shop, shop.order(usd, currency="USD")).status_code == 201


def test_limit_near_is_sent_once_per_period_at_80_percent(
    shop: Shop, client: TestClient, finance: Caller, database: Database
) -> None:
    limit = add_limit(client, finance, scope="buyer", period="day", amount=50000)
    for amount in (20000, 19999):
        try_to_pay(shop, shop.order(priced(shop, amount)))
    assert books.events(database, "limit.near") == []  # 79.998%
    for amount in (1, 5000):
        try_to_pay(shop, shop.order(priced(shop, amount)))
    [event] = books.events(database, "limit.near")
    assert event["data"]["object"]["limit_id"] == limit["id"]
    assert (event["data"]["object"]["used"], event["data"]["object"]["remaining"]) == (40000, 10000)
    assert event["data"]["object"]["subject"] == shop.buyer.id
    assert event["app_id"] == shop.app.id


def test_a_changed_limit_applies_to_the_next_payment_without_a_restart(
    shop: Shop, client: TestClient, finance: Caller
) -> None:
    limit = add_limit(client, finance, scope="buyer", period="transaction", amount=5000)
    order = shop.order(priced(shop, 9900))
    assert try_to_pay(shop, order).status_code == 422
    raised = client.patch(
        f"/v1/admin/limits/{limit['id']}", json={"amount": 10000}, headers=finance.headers
    )
    assert raised.status_code == 200
    assert try_to_pay(shop, order).status_code == 201
    client.delete(f"/v1/admin/limits/{limit['id']}", headers=finance.headers)
    assert try_to_pay(shop, shop.order(priced(shop, 20000))).status_code == 201


def test_a_patch_sets_a_description_and_an_empty_one_clears_it(
    client: TestClient, finance: Caller
) -> None:
    limit = add_limit(client, finance, scope="buyer", period="day", amount=5000)
    path = f"/v1/admin/limits/{limit['id']}"
    named = client.patch(path, json={"description": "新客日限"}, headers=finance.headers)
    assert named.json()["description"] == "新客日限"
    kept = client.patch(path, json={"amount": 6000}, headers=finance.headers)
    assert (kept.json()["description"], kept.json()["amount"]) == ("新客日限", 6000)
    cleared = client.patch(path, json={"description": ""}, headers=finance.headers)
    assert cleared.json()["description"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "planet", "period": "day", "amount": 1},
        {"scope": "buyer", "period": "week", "amount": 1},
        {"scope": "buyer", "period": "day", "amount": 0},
        {"scope": "buyer", "period": "day", "amount": 1.5},
        {"scope": "app", "period": "day", "amount": 1, "buyer_level": "verified"},
        {"scope": "buyer", "period": "day", "amount": 1, "channel": "test"},
        {"scope": "buyer", "period": "day", "amount": 1, "currency": "XYZ"},
        # A typo made a limit that never applied (found in an audit).
        {"scope": "channel", "period": "day", "amount": 1, "channel": "wechat_nativ"},
        {"scope": "buyer", "period": "day", "amount": 1, "app_id": "app_does_not_exist"},
    ],
)
def test_a_bad_limit_is_refused_and_nothing_is_stored(
    client: TestClient, finance: Caller, body: dict[str, Any]
) -> None:
    answer = client.post(
        "/v1/admin/limits", json={"currency": "CNY", **body}, headers=finance.headers
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/admin/limits", headers=finance.headers).json()["data"] == []


def test_only_finance_and_admins_change_limits(shop: Shop, client: TestClient) -> None:
    body = {"scope": "buyer", "period": "day", "amount": 1, "currency": "CNY"}
    for caller in (shop.app, shop.buyer, shop.build.staff(Role.SUPPORT)):
        assert client.post("/v1/admin/limits", json=body, headers=caller.headers).status_code == 403
        level = client.put(
            f"/v1/admin/users/{shop.buyer.id}/level", json={"level": "x"}, headers=caller.headers
        )
        assert level.status_code == 403
    for caller in (shop.app, shop.buyer):
        assert client.get("/v1/admin/limits", headers=caller.headers).status_code == 403


def test_an_order_retried_after_midnight_counts_once(
    shop: Shop, client: TestClient, finance: Caller, clock: FrozenClock
) -> None:
    """Found in an audit: an order's first attempt counted on the day it was made, its retry
    after local midnight on the next day as well, so the one order, once paid, used up both
    days' allowance (docs/limits.md: counted once per order, a retry counts nothing new)."""
    limit = add_limit(client, finance, scope="buyer", period="day", amount=10000)
    local = clock.now().astimezone(_SHANGHAI)
    to_midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), _SHANGHAI)
    clock.advance(to_midnight - local - timedelta(minutes=5))  # 23:55 in Shanghai
    order = shop.order(priced(shop, 6000))
    assert try_to_pay(shop, order, test_outcome="failed").json()["status"] == "failed"
    clock.advance(timedelta(minutes=10))  # 00:05: the order is still payable
    shop.confirm(shop.pay(order))
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"

    finance = shop.build.relogin(finance)  # hours on: a fresh token
    usage = client.get(f"/v1/admin/limits/{limit['id']}/usage", headers=finance.headers)
    assert sum(row["used"] for row in usage.json()["data"]) == 6000, usage.json()
    assert try_to_pay(shop, shop.order(priced(shop, 4000))).status_code == 201


def test_a_limits_usage_is_listed_in_pages_like_every_list(
    build: Builders, client: TestClient, finance: Caller
) -> None:
    """One row per buyer and day adds up: the list pages with `limit` and `starting_after`
    (it was cut at 500 rows with `has_more: false`)."""
    limit = add_limit(client, finance, scope="buyer", period="day", amount=100000)
    buyers = [Shop(build) for _ in range(3)]
    for shop in buyers:
        assert try_to_pay(shop, shop.order(priced(shop, 1000))).status_code == 201
    path = f"/v1/admin/limits/{limit['id']}/usage"

    first = client.get(f"{path}?limit=2", headers=finance.headers).json()
    rest = client.get(
        f"{path}?limit=2&starting_after={first['data'][-1]['id']}", headers=finance.headers
    ).json()

    assert (len(first["data"]), first["has_more"]) == (2, True)
    assert (len(rest["data"]), rest["has_more"]) == (1, False)
    subjects = {row["subject"] for row in first["data"] + rest["data"]}
    assert subjects == {shop.buyer.id for shop in buyers}


def test_a_staff_account_has_no_buyer_level_to_set(
    build: Builders, client: TestClient, finance: Caller
) -> None:
    admin = build.staff(Role.ADMIN)

    answer = client.put(
        f"/v1/admin/users/{admin.id}/level", json={"level": "verified"}, headers=finance.headers
    )

    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == "user_not_found"


def test_a_daily_limit_admits_payments_up_to_the_exact_amount_and_not_one_unit_more(
    shop: Shop, client: TestClient, finance: Caller
) -> None:
    add_limit(client, finance, scope="buyer", period="day", amount=30000)
    half = priced(shop, 15000)
    assert try_to_pay(shop, shop.order(half)).status_code == 201
    assert try_to_pay(shop, shop.order(half)).status_code == 201  # exactly the limit
    refused = try_to_pay(shop, shop.order(priced(shop, 1)))
    assert (refused.status_code, refused.json()["remaining"]) == (422, 0)


def test_paying_through_one_channel_gives_back_only_the_other_channels_allowance(
    shop: Shop, client: TestClient, finance: Caller, database: Database, clock: FrozenClock
) -> None:
    """An order tried on two channels counts against both channels' limits; once paid through
    one, that channel keeps the amount and the other gets it back (docs/limits.md)."""
    limit = add_limit(client, finance, scope="channel", period="day", amount=50000)
    order = shop.order(priced(shop, 20000))
    payment = shop.pay(order)  # the test channel
    with database.session_scope() as session:
        spend = limits.Spend(
            order["id"], shop.app.id, shop.buyer.id, "alipay_qr", 20000, "CNY"
        )  # an attempt on another channel, as a failover makes
        limits.reserve(session, limits.LimitPolicy(), spend, clock.now())
    shop.confirm(payment)
    usage = client.get(f"/v1/admin/limits/{limit['id']}/usage", headers=finance.headers)
    used = {row["subject"]: row["used"] for row in usage.json()["data"]}
    assert used == {"test": 20000, "alipay_qr": 0}
    # Given back once, and marked so: the order's reservations still held are the paid one.
    with database.session_scope() as session:
        rows = session.execute(
            select(LimitUsage.subject, LimitReservation.released_at)
            .join(LimitUsage, LimitUsage.id == LimitReservation.usage_id)
            .where(LimitReservation.order_id == order["id"])
        ).all()
    reservations = dict(rows)
    assert reservations == {"test": None, "alipay_qr": clock.now()}


def test_the_limits_list_pages_by_limit_and_cursor(client: TestClient, finance: Caller) -> None:
    """API.md: every list pages with `limit` and `starting_after`. Found by an outside audit:
    the limits list ignored both and gave every limit at once."""
    made = [add_limit(client, finance, scope="app", period="day", amount=100 + n) for n in range(3)]
    newest_first = [limit["id"] for limit in reversed(made)]
    first = client.get("/v1/admin/limits?limit=2", headers=finance.headers).json()
    assert ([limit["id"] for limit in first["data"]], first["has_more"]) == (newest_first[:2], True)
    rest = client.get(
        f"/v1/admin/limits?limit=2&starting_after={newest_first[1]}", headers=finance.headers
    ).json()
    assert ([limit["id"] for limit in rest["data"]], rest["has_more"]) == (newest_first[2:], False)
    assert client.get("/v1/admin/limits?limit=0", headers=finance.headers).status_code == 422
