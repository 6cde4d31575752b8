"""Wallet payments racing across server processes never spend more than the balance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import httpx

from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from tests import books
from tests.builders import Builders, Shop
from tests.serving import running_server


def test_concurrent_wallet_payments_never_overspend_the_balance(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    count = 12 if database.dialect == "postgresql" else 6
    shop = Shop(build)
    shop.client.put(
        "/v1/users/me/payment-password", json={"new_password": "135790"}, headers=shop.buyer.headers
    ).raise_for_status()
    top_up = shop.client.post(
        "/v1/wallet/top-ups",
        json={"user_id": shop.buyer.id, "amount": 3 * 9900 + 100, "currency": "CNY"},
        headers=shop.app.headers,
    ).json()
    shop.confirm(shop.pay(top_up))
    # Distinct products, so that each order's entitlement is its own.
    products = [build.product(shop.app, title=f"Course {n}") for n in range(count)]
    barrier = Barrier(count)

    def order(base_url: str, product_id: str) -> str:
        # Made by the server, on its own clock (the test client's is frozen in the past).
        body = {"user_id": shop.buyer.id, "items": [{"product_id": product_id}], "currency": "CNY"}
        with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
            response = client.post("/v1/orders", json=body, headers=shop.app.headers)
            response.raise_for_status()
            order_id: str = response.json()["id"]
            return order_id

    def pay(base_url: str, order_id: str) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
            barrier.wait()
            return client.post(
                f"/v1/orders/{order_id}/payments",
                json={"channel": "wallet", "payment_password": "135790"},
                headers=shop.app.headers,
            )

    with (
        running_server(settings, workers=2, log=tmp_path / "server.log") as base_url,
        ThreadPoolExecutor(max_workers=count) as pool,
    ):
        orders = [order(base_url, product["id"]) for product in products]
        responses = list(pool.map(lambda order_id: pay(base_url, order_id), orders))

    paid = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(paid) == 3, [r.text for r in responses]
    assert all(r.json()["status"] == "succeeded" for r in paid)
    assert all(r.status_code == 402 for r in refused), [r.text for r in refused]
    assert shop.get(f"/v1/wallet?user_id={shop.buyer.id}")["balances"] == [
        {"amount": 100, "currency": "CNY"}
    ]
    assert books.violations(database) == []


def test_concurrent_top_ups_all_reach_the_balance(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    count = 12 if database.dialect == "postgresql" else 6
    shop = Shop(build)
    barrier = Barrier(count)

    def top_up_and_confirm(base_url: str, amount: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
            body = {"user_id": shop.buyer.id, "amount": amount, "currency": "CNY"}
            order = client.post("/v1/wallet/top-ups", json=body, headers=shop.app.headers)
            order.raise_for_status()
            payment = client.post(
                f"/v1/orders/{order.json()['id']}/payments",
                json={"channel": "test"},
                headers=shop.app.headers,
            )
            payment.raise_for_status()
            barrier.wait()
            return client.post(f"/sandbox/test/payments/{payment.json()['id']}/confirm", json={})

    amounts = [1000 + n for n in range(count)]
    with (
        running_server(settings, workers=2, log=tmp_path / "server.log") as base_url,
        ThreadPoolExecutor(max_workers=count) as pool,
    ):
        responses = list(pool.map(lambda amount: top_up_and_confirm(base_url, amount), amounts))

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    balance = shop.get(f"/v1/wallet?user_id={shop.buyer.id}")["balances"]
    assert balance == [{"amount": sum(amounts), "currency": "CNY"}]
    assert books.violations(database) == []


def test_top_ups_asked_for_at_once_never_pass_the_balance_cap(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    count = 14 if database.dialect == "postgresql" else 12
    shop = Shop(build)
    barrier = Barrier(count)

    def ask(base_url: str) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
            barrier.wait()
            return client.post(
                "/v1/wallet/top-ups",
                json={"user_id": shop.buyer.id, "amount": 500_000, "currency": "CNY"},
                headers=shop.app.headers,
            )

    with (
        running_server(settings, workers=2, log=tmp_path / "server.log") as base_url,
        ThreadPoolExecutor(max_workers=count) as pool,
    ):
        responses = list(pool.map(lambda _: ask(base_url), range(count)))

    accepted = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(accepted) == 10  # 10 × 5,000.00 is the 50,000.00 cap
    assert all(r.json()["code"] == "wallet_balance_cap_reached" for r in refused), [
        r.text for r in refused
    ]
