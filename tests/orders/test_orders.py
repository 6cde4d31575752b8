"""Orders: the amount comes from the catalog; out_trade_no is unique per app; expiry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderNotFound
from knowpay.orders.models import Order
from knowpay.orders.states import IllegalOrderTransition, OrderStatus, next_status
from knowpay.payments.repository import order_id_of
from tests.builders import Builders, Shop
from tests.statements import statements_sent


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def _orders(database: Database) -> int:
    with database.session_scope(read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(Order)) or 0)


def test_amount_is_computed_from_published_prices(shop: Shop, build: Builders) -> None:
    ebook = build.product(
        shop.app, title="E-book", kind="ebook", prices=[{"amount": 2990, "currency": "CNY"}]
    )
    order = shop.order(shop.course, ebook, metadata={"source": "ios"})
    assert order["amount"] == 9900 + 2990
    assert order["currency"] == "CNY"
    assert order["status"] == "created"
    assert order["metadata"] == {"source": "ios"}
    assert [i["unit_amount"] for i in order["items"]] == [9900, 2990]
    assert order["expires_at"] == "2026-01-01T12:30:00Z"  # 30 minutes by default


def test_quantity_multiplies_the_unit_price(shop: Shop) -> None:
    response = shop.client.post(
        "/v1/orders",
        json={
            "user_id": shop.buyer.id,
            "currency": "CNY",
            "items": [{"product_id": shop.course["id"], "quantity": 3}],
        },
        headers=shop.app.headers,
    )
    assert response.json()["amount"] == 3 * 9900


def test_a_caller_sent_amount_is_refused_and_nothing_is_written(
    shop: Shop, database: Database
) -> None:
    for field in ("amount", "total_amount"):
        body = {
            "user_id": shop.buyer.id,
            "currency": "CNY",
            "items": [{"product_id": shop.course["id"]}],
            field: 1,
        }
        response = shop.client.post("/v1/orders", json=body, headers=shop.app.headers)
        assert response.status_code == 422
        [error] = response.json()["errors"]
        assert error["field"] == field  # the offending field, not the whole body
        assert "computed from the catalog" in error["message"]
    assert _orders(database) == 0


def test_same_out_trade_no_and_content_returns_the_existing_order(
    shop: Shop, database: Database
) -> None:
    first = shop.order(out_trade_no="P2026-0001")
    again = shop.client.post(
        "/v1/orders",
        json={
            "user_id": shop.buyer.id,
            "currency": "CNY",
            "items": [{"product_id": shop.course["id"]}],
            "out_trade_no": "P2026-0001",
        },
        headers=shop.app.headers,
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert _orders(database) == 1


def test_same_out_trade_no_with_other_content_is_409(
    shop: Shop, build: Builders, database: Database
) -> None:
    shop.order(out_trade_no="P2026-0002")
    other = build.product(shop.app, title="Other", prices=[{"amount": 100, "currency": "CNY"}])
    response = shop.client.post(
        "/v1/orders",
        json={
            "user_id": shop.buyer.id,
            "currency": "CNY",
            "items": [{"product_id": other["id"]}],
            "out_trade_no": "P2026-0002",
        },
        headers=shop.app.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "out_trade_no_conflict"
    assert _orders(database) == 1


def test_out_trade_no_is_unique_per_app_only(shop: Shop, build: Builders) -> None:
    shop.order(out_trade_no="SHARED-1")
    other_app = build.app("other")
    other_buyer = build.buyer(other_app)
    other_course = build.product(other_app)
    response = shop.client.post(
        "/v1/orders",
        json={
            "user_id": other_buyer.id,
            "currency": "CNY",
            "items": [{"product_id": other_course["id"]}],
            "out_trade_no": "SHARED-1",
        },
        headers=other_app.headers,
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"currency": "USD"}, 422, "price_not_available"),
        ({"currency": "XYZ"}, 422, "validation_error"),
        ({"expires_in": 10}, 422, "validation_error"),
        ({"expires_in": 8 * 86400}, 422, "validation_error"),
        ({"items": []}, 422, "validation_error"),
        ({"items": [{"product_id": "prod_nope"}]}, 404, "product_not_found"),
        ({"items": [{"product_id": "P", "quantity": 0}]}, 422, "validation_error"),
        # An integer spelled as a float (the API's description says so).
        ({"items": [{"product_id": "P", "quantity": 1.0}]}, 422, "validation_error"),
        ({"expires_in": 1.8e3}, 422, "validation_error"),
        ({"user_id": "usr_nope"}, 422, "user_not_found"),
        ({"out_trade_no": "has spaces"}, 422, "validation_error"),
    ],
)
def test_bad_orders_are_refused_and_write_nothing(
    shop: Shop, database: Database, change: dict[str, object], status: int, code: str
) -> None:
    body = {
        "user_id": shop.buyer.id,
        "currency": "CNY",
        "items": [{"product_id": shop.course["id"]}],
        **change,
    }
    response = shop.client.post("/v1/orders", json=body, headers=shop.app.headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert _orders(database) == 0


def test_an_order_whose_total_is_more_than_an_amount_may_be_is_refused(
    shop: Shop, build: Builders, database: Database
) -> None:
    """Found by an audit against API.md: a price of 10^15 × 100 made an order no partial
    refund could name (refund amounts, like prices, stop at 10^15)."""
    dear = build.product(shop.app, prices=[{"amount": 10**15, "currency": "CNY"}])
    before = _orders(database)
    body = {
        "user_id": shop.buyer.id,
        "currency": "CNY",
        "items": [{"product_id": dear["id"], "quantity": 2}],
    }
    response = shop.client.post("/v1/orders", json=body, headers=shop.app.headers)
    assert (response.status_code, response.json()["code"]) == (422, "order_amount_too_large")
    assert _orders(database) == before
    body["items"] = [{"product_id": dear["id"]}]
    assert shop.client.post("/v1/orders", json=body, headers=shop.app.headers).status_code == 201


def test_draft_products_cannot_be_sold(shop: Shop, build: Builders) -> None:
    draft = build.product(shop.app, status="draft")
    body = {"user_id": shop.buyer.id, "currency": "CNY", "items": [{"product_id": draft["id"]}]}
    response = shop.client.post("/v1/orders", json=body, headers=shop.app.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "product_not_for_sale"


def test_an_app_cannot_order_for_another_apps_buyer(shop: Shop, build: Builders) -> None:
    other = build.app("other")
    body = {
        "user_id": shop.buyer.id,
        "currency": "CNY",
        "items": [{"product_id": shop.course["id"]}],
    }
    response = shop.client.post("/v1/orders", json=body, headers=other.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "user_not_found"


def test_buyers_and_apps_see_only_their_orders(
    shop: Shop, build: Builders, client: TestClient
) -> None:
    order = shop.order()
    stranger = build.buyer(shop.app)
    other_app = build.app("other")
    assert client.get(f"/v1/orders/{order['id']}", headers=shop.buyer.headers).status_code == 200
    assert client.get(f"/v1/orders/{order['id']}", headers=stranger.headers).status_code == 404
    assert client.get(f"/v1/orders/{order['id']}", headers=other_app.headers).status_code == 404
    assert client.get("/v1/orders", headers=stranger.headers).json()["data"] == []
    assert [
        o["id"] for o in client.get("/v1/orders", headers=shop.buyer.headers).json()["data"]
    ] == [order["id"]]
    assert client.get("/v1/orders", headers=other_app.headers).json()["data"] == []
    # Only apps create orders.
    body = {
        "user_id": shop.buyer.id,
        "currency": "CNY",
        "items": [{"product_id": shop.course["id"]}],
    }
    assert client.post("/v1/orders", json=body, headers=shop.buyer.headers).status_code == 403


def test_an_expired_order_cannot_be_paid(shop: Shop, clock: FrozenClock) -> None:
    order = shop.order(expires_in=60)
    clock.advance(timedelta(seconds=60))
    response = shop.client.post(
        f"/v1/orders/{order['id']}/payments", json={"channel": "test"}, headers=shop.app.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "order_expired"


def test_the_transition_table_refuses_illegal_moves() -> None:
    assert next_status("created", OrderStatus.PAID) is OrderStatus.PAID
    assert next_status("paid", OrderStatus.REFUNDED) is OrderStatus.REFUNDED
    for current, target in [
        ("paid", OrderStatus.CREATED),
        ("closed", OrderStatus.PAID),
        ("refunded", OrderStatus.PAID),
        ("created", OrderStatus.REFUNDED),
        ("paid", OrderStatus.CLOSED),
    ]:
        with pytest.raises(IllegalOrderTransition):
            next_status(current, target)


def test_metadata_values_are_kept_as_strings(shop: Shop) -> None:
    order = shop.order(metadata={"source": "ios", "campaign": 42, "vip": True})
    assert order["metadata"] == {"source": "ios", "campaign": "42", "vip": "true"}


@pytest.mark.parametrize("metadata", [{"source": "\ud800"}, {"\udfff": "ios"}])
def test_metadata_with_a_lone_surrogate_is_refused_and_writes_nothing(
    shop: Shop, database: Database, metadata: dict[str, str]
) -> None:
    # Found by fuzzing the running demo over HTTP: JSON may escape a lone surrogate
    # ("\ud800"), which no database text can hold; metadata took it and the INSERT was a 500.
    body = {
        "user_id": shop.buyer.id,
        "currency": "CNY",
        "items": [{"product_id": shop.course["id"]}],
        "metadata": metadata,
    }
    response = shop.client.post(
        "/v1/orders",
        content=json.dumps(body),  # ASCII, the surrogate escaped as JSON allows
        headers={**shop.app.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["field"] == "metadata"
    assert _orders(database) == 0


def test_reading_an_order_takes_one_statement_for_the_order_and_its_items(
    shop: Shop, build: Builders, app: FastAPI
) -> None:
    second = build.product(shop.app, title="Second", prices=[{"amount": 100, "currency": "CNY"}])
    order = shop.order(shop.course, second)
    with statements_sent(app.state.database.engine) as statements:
        read = shop.get(f"/v1/orders/{order['id']}")

    assert [item["product_id"] for item in read["items"]] == [shop.course["id"], second["id"]]
    order_reads = [s for s in statements if "order_items" in s or "FROM orders" in s]
    assert len(order_reads) == 1, order_reads


def test_an_order_named_by_a_subquery_that_finds_none_is_not_found_without_its_sql(
    database: Database,
) -> None:
    with database.session_scope() as session, pytest.raises(OrderNotFound) as refused:
        orders.lock(session, order_id_of("pay_missing"))
    assert refused.value.detail == "No such order."
    with database.session_scope() as session, pytest.raises(OrderNotFound) as refused:
        orders.lock(session, "ord_missing")
    assert refused.value.detail == "No such order: ord_missing"
