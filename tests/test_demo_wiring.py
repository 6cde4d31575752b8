"""`knowpay demo` wires Alipay and WeChat Pay to their simulators under /sandbox/: a buyer
pays through each over real HTTP, as in the demo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import cast

import httpx
import pytest
from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.cli.wiring import SANDBOX_PREFIX, wire_sandbox
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from tests import books
from tests.builders import Builders, Shop
from tests.live import free_port, serve_in_thread


@pytest.fixture
def demo(settings: Settings, database: Database) -> Iterator[tuple[Shop, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    wired, sandbox = wire_sandbox(settings.model_copy(update={"public_url": base}))
    app = create_app(wired, clock=SystemClock(), database=database, run_worker=False)
    app.mount(SANDBOX_PREFIX, sandbox)
    with (
        serve_in_thread(app, port=port) as url,
        httpx.Client(base_url=url, timeout=20, trust_env=False) as client,
    ):
        yield Shop(Builders(cast(TestClient, client), database, FrozenClock())), url


def _wait_paid(shop: Shop, order_id: str) -> None:
    deadline = time.monotonic() + 20
    while shop.get(f"/v1/orders/{order_id}")["status"] != "paid":
        assert time.monotonic() < deadline, "the order was never paid"
        time.sleep(0.05)


def test_alipay_qr_in_the_demo(demo: tuple[Shop, str], database: Database) -> None:
    shop, _ = demo
    order = shop.order()
    payment = shop.pay(order, channel="alipay_qr")
    assert (
        httpx.post(
            payment["action"]["code_url"], data={"outcome": "pay"}, trust_env=False
        ).status_code
        == 200
    )
    _wait_paid(shop, order["id"])
    assert books.violations(database) == []


def test_wechat_native_in_the_demo(demo: tuple[Shop, str], database: Database) -> None:
    shop, base = demo
    order = shop.order()
    payment = shop.pay(order, channel="wechat_native")
    assert payment["action"]["type"] == "qr_code"
    paid = httpx.post(
        f"{base}{SANDBOX_PREFIX}/wechatpay/_trades/{payment['id']}/pay", trust_env=False
    )
    assert paid.status_code < 300, paid.text
    _wait_paid(shop, order["id"])
    assert books.violations(database) == []
