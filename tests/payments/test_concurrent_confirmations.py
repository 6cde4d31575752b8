"""Many processes, one payment: concurrent confirmations over real HTTP against
`knowpay serve --workers 2` record exactly one capture."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import httpx
import pytest

from knowpay.kit.config import Settings
from knowpay.kit.db import Database
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
