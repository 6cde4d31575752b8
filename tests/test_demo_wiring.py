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
from knowpay.channels.registry import ChannelRegistry
from knowpay.channels.types import CHANNEL_GATEWAYS
from knowpay.cli.wiring import SANDBOX_PREFIX, wire_sandbox
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import RateLimitSettings, Settings
from knowpay.kit.db import Database
from tests import books
from tests.builders import Builders, Shop
from tests.live import free_port, serve_in_thread


@pytest.fixture
def demo(settings: Settings, database: Database) -> Iterator[tuple[Shop, str]]:
    yield from _serve_demo(settings, database)


def _serve_demo(settings: Settings, database: Database) -> Iterator[tuple[Shop, str]]:
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


ANONYMOUS_PER_IP = 3


@pytest.fixture
def strictly_limited_demo(settings: Settings, database: Database) -> Iterator[tuple[Shop, str]]:
    limits = RateLimitSettings(
        api_per_ip=f"{ANONYMOUS_PER_IP}/minute", key_prefix=settings.rate_limits.key_prefix
    )
    yield from _serve_demo(settings.model_copy(update={"rate_limits": limits}), database)


def test_the_simulators_calls_do_not_spend_the_local_anonymous_rate_limit(
    strictly_limited_demo: tuple[Shop, str],
) -> None:
    """knowpay's calls to the simulated gateway come from 127.0.0.1 without credentials, as
    do the payer's; counted as knowpay traffic, a few payments used up the budget and the
    gateway "answered" 429 (a demo under load answered 503 once its breaker opened)."""
    shop, base = strictly_limited_demo
    for _ in range(ANONYMOUS_PER_IP + 2):
        payment = shop.pay(shop.order(), channel="wechat_native")
        assert payment["status"] == "pending"
        paid = httpx.post(
            f"{base}{SANDBOX_PREFIX}/wechatpay/_trades/{payment['id']}/pay", trust_env=False
        )
        assert paid.status_code < 300, paid.text
    # knowpay itself is still limited for anonymous callers.
    answers = [
        httpx.get(f"{base}/v1/orders", trust_env=False).status_code
        for _ in range(ANONYMOUS_PER_IP + 1)
    ]
    assert set(answers) == {401, 429}
    assert answers[-1] == 429


def test_every_channel_names_the_gateway_the_notification_checks_expect(
    settings: Settings,
) -> None:
    """CHANNEL_GATEWAYS (which gateway may speak of a channel's trades) restates each
    adapter's own `gateway`: the two must not drift apart."""
    wired, _sandbox = wire_sandbox(settings)
    registry = ChannelRegistry.from_settings(wired, SystemClock())
    try:
        built = {name: registry.adapter(name).gateway for name in registry.names()}
    finally:
        registry.close()
    assert {"alipay_qr", "wechat_native", "unionpay", "stripe", "paypal", "test"} <= set(built)
    assert built == {name: CHANNEL_GATEWAYS[name] for name in built}


def test_the_simulators_pages_have_their_own_policy(demo: tuple[Shop, str]) -> None:
    """Found by a browser audit: the simulators' pages, mounted in the demo, got knowpay's
    strict policy: their inline styles were dropped and UnionPay's result page could not post
    the payer back by itself."""
    _shop, url = demo
    page = httpx.get(f"{url}/sandbox/alipay/gateway.do", trust_env=False)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "form-action" not in policy  # back to the merchant, wherever it is
    docs = httpx.get(f"{url}/sandbox/docs", trust_env=False)
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    own = httpx.get(f"{url}/login", trust_env=False).headers["content-security-policy"]
    assert "'unsafe-inline'" not in own  # knowpay's own pages keep theirs
