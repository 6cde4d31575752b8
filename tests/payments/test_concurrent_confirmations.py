"""Many processes, one payment: concurrent confirmations over real HTTP against
`knowpay serve --workers 2` record exactly one capture."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from knowpay.channels.types import ChannelStatus, CreatePaymentResult, PaymentAction
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.payments import repository as payments_repository
from knowpay.payments import service as payments
from tests import books
from tests.builders import Builders, Shop
from tests.serving import running_server


def _confirm_concurrently(base_url: str, payment_id: str, count: int) -> list[httpx.Response]:
    barrier = Barrier(count)

    def confirm(_: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            barrier.wait()
            return client.post(
                f"/sandbox/test/payments/{payment_id}/confirm", json={"outcome": "succeeded"}
            )

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(confirm, range(count)))


def test_concurrent_confirmations_record_one_capture(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    count = 50 if database.dialect == "postgresql" else 12
    shop = Shop(build)
    order = shop.order()
    payment = shop.pay(order)
    with running_server(settings, workers=2, log=tmp_path / "server.log") as base_url:
        responses = _confirm_concurrently(base_url, payment["id"], count)

    assert [r.status_code for r in responses] == [200] * count, [
        r.text for r in responses if r.status_code != 200
    ]
    outcomes = sorted(r.json()["notification"] for r in responses)
    assert outcomes == ["duplicate"] * (count - 1) + ["processed"]
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "succeeded"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert len(books.entries(database, kind="payment_captured")) == 1
    assert len(books.entitlements(database, shop.buyer.id)) == 1
    assert len(books.events(database, "order.paid")) == 1
    assert len(books.events(database, "payment.succeeded")) == 1
    assert books.violations(database) == []


def test_two_attempts_paid_at_once_pay_the_order_once(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    shop = Shop(build)
    order = shop.order()
    attempts = [shop.pay(order) for _ in range(4)]
    with running_server(settings, workers=2, log=tmp_path / "server.log") as base_url:
        barrier = Barrier(len(attempts))

        def confirm(payment_id: str) -> int:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                barrier.wait()
                return client.post(
                    f"/sandbox/test/payments/{payment_id}/confirm", json={}
                ).status_code

        with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
            statuses = list(pool.map(confirm, [a["id"] for a in attempts]))
    assert statuses == [200] * len(attempts)
    payments = [shop.get(f"/v1/payments/{a['id']}") for a in attempts]
    assert all(p["status"] == "succeeded" for p in payments)
    assert sorted(p["is_duplicate"] for p in payments) == [False, True, True, True]
    assert len(books.entries(database, kind="payment_captured")) == 1
    assert len(books.entries(database, kind="duplicate_captured")) == 3
    assert len(books.events(database, "payment.duplicate_detected")) == 3
    assert books.violations(database) == []


@pytest.mark.postgres_only
def test_a_capture_waiting_while_the_gateways_answer_is_recorded_does_not_deadlock(
    build: Builders, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording the gateway's answer locks only the attempt. A notification's capture that
    holds the order and waits for the attempt meanwhile goes through when that commits;
    were the answer to lock the order after the attempt, PostgreSQL would report a deadlock."""
    if database.dialect != "postgresql":
        pytest.skip("row locks held across connections: PostgreSQL")
    shop = Shop(build)
    order = shop.order()
    payment = shop.pay(order)
    assert payment["status"] == "pending"
    now = clock.now()

    def capture() -> None:
        with database.session_scope() as session:
            trade = payment["gateway_trade_no"]  # the trade the test gateway opened
            payments.record_capture(session, payment["id"], Money(9900, "CNY"), trade, now)

    with ThreadPoolExecutor(max_workers=1) as pool:
        capturing: list[Any] = []
        real_get = payments_repository.get

        def get_then_let_the_capture_wait(*args: Any, **kwargs: Any) -> Any:
            locked = real_get(*args, **kwargs)
            if kwargs.get("for_update") and not capturing:
                capturing.append(pool.submit(capture))
                books.wait_for_a_row_lock_wait(database, "the capture")
            return locked

        monkeypatch.setattr(payments_repository, "get", get_then_let_the_capture_wait)
        answer = CreatePaymentResult(
            ChannelStatus.PENDING, PaymentAction(type="qr_code", code_url="weixin://x")
        )
        with database.session_scope() as session:
            payments.apply_create_result(session, payment["id"], answer, now)
        [captured] = capturing
        captured.result(timeout=30)

    stored = shop.get(f"/v1/payments/{payment['id']}")
    assert stored["status"] == "succeeded"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert len(books.entries(database, kind="payment_captured")) == 1
    assert books.violations(database) == []


@pytest.mark.postgres_only
def test_a_capture_locks_a_buyers_entitlements_in_product_order_as_a_refund_does(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """Found in review: a capture locked a buyer's entitlements in its items' order, a refund
    in another, so the two could deadlock. Here a transaction holds the first entitlement by
    product, as a refund's does, while a capture of an order listing the products the other
    way round runs; it then takes the second. Were the capture to lock the second first,
    PostgreSQL would report a deadlock."""
    if database.dialect != "postgresql":
        pytest.skip("row locks held across connections: PostgreSQL")
    shop = Shop(build)
    products = [build.product(shop.app, prices=[{"amount": 100, "currency": "CNY"}]) for _ in "ab"]
    low, high = sorted(products, key=lambda product: product["id"])
    shop.confirm(shop.pay(shop.order(low, high)))  # the buyer has both entitlements
    payment = shop.pay(shop.order(high, low))  # listed the other way round
    lock = text(
        "SELECT id FROM entitlements WHERE user_id = :user AND product_id = :product FOR UPDATE"
    )

    def capture() -> None:
        with database.session_scope() as session:
            trade, now = payment["gateway_trade_no"], clock.now()
            payments.record_capture(session, payment["id"], Money(200, "CNY"), trade, now)

    with ThreadPoolExecutor(max_workers=1) as pool, database.session_scope() as refund_like:
        refund_like.execute(lock, {"user": shop.buyer.id, "product": low["id"]})
        capturing = pool.submit(capture)
        books.wait_for_a_row_lock_wait(database, "the capture")
        refund_like.execute(lock, {"user": shop.buyer.id, "product": high["id"]})
    capturing.result(timeout=30)

    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "succeeded"
    assert books.violations(database) == []


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
