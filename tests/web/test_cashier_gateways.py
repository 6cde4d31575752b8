"""The cashier against the real gateway adapters and their simulators (the demo's wiring,
served over real HTTP): QR codes for Alipay precreate and WeChat Native, and the way to
Alipay's page for alipay_page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import cast
from urllib.parse import urlsplit

import httpx
import pytest
import segno
from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.cli.wiring import SANDBOX_PREFIX, wire_sandbox
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from tests.builders import Builders, Shop
from tests.live import free_port, serve_in_thread
from tests.web.helpers import csrf_of, login


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


def choose(browser: httpx.Client, order_id: str, channel: str) -> httpx.Response:
    page = browser.get(f"/pay/{order_id}")
    assert f'value="{channel}"' in page.text, page.text
    response = browser.post(
        f"/pay/{order_id}/payments",
        data={"channel": channel, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response


def qr_of(page: str) -> str:
    found = re.search(r'<figure class="qr" id="qr">\s*(<svg.*?</svg>)', page, re.S)
    assert found, "no QR code on the page"
    return found.group(1)


@pytest.mark.parametrize(
    ("channel", "scheme", "caption"),
    [
        ("alipay_qr", "http", "请使用支付宝扫一扫完成支付"),
        ("wechat_native", "weixin", "请使用微信扫一扫完成支付"),
    ],
)
def test_qr_channels_show_the_code_url_as_an_svg_qr(
    demo: tuple[Shop, str], channel: str, scheme: str, caption: str
) -> None:
    shop, base = demo
    order = shop.order()
    with httpx.Client(base_url=base, timeout=20, trust_env=False) as browser:
        login(browser, shop.buyer.email, shop.buyer.password)
        chosen = choose(browser, order["id"], channel)
        assert chosen.headers["location"] == f"/pay/{order['id']}"
        page = browser.get(f"/pay/{order['id']}")
        svg = qr_of(page.text)
        assert caption in page.text
        [payment] = shop.get(f"/v1/orders/{order['id']}/payments")["data"]
        code_url = payment["action"]["code_url"]
        assert urlsplit(code_url).scheme == scheme
        # The QR carries the code_url exactly as the gateway gave it.
        expected = segno.make(code_url, error="m", micro=False)
        assert svg == expected.svg_inline(
            scale=6, border=2, dark="#111", light="#fff", omitsize=True
        )
        assert browser.get(f"/pay/{order['id']}/status").json()["state"] == "pending"


def test_alipay_page_goes_to_the_gateway_and_comes_back_paid(demo: tuple[Shop, str]) -> None:
    shop, base = demo
    order = shop.order()
    with httpx.Client(base_url=base, timeout=20, trust_env=False) as browser:
        login(browser, shop.buyer.email, shop.buyer.password)
        chosen = choose(browser, order["id"], "alipay_page")
        assert chosen.headers["location"] == f"/pay/{order['id']}?go=1"
        page = browser.get(chosen.headers["location"])
        go = re.search(r'data-go-url="([^"]+)"', page.text)
        assert go, page.text
        gateway_url = go.group(1).replace("&amp;", "&")
        assert gateway_url.startswith(f"{base}{SANDBOX_PREFIX}/alipay")
        # The browser opens Alipay's cashier (which opens the trade there), and pays.
        assert browser.get(gateway_url).status_code == 200
        [payment] = shop.get(f"/v1/orders/{order['id']}/payments")["data"]
        paid = httpx.post(
            f"{base}{SANDBOX_PREFIX}/alipay/_pay",
            json={"out_trade_no": payment["id"]},
            trust_env=False,
        )
        assert paid.status_code == 200, paid.text
        back = browser.get(f"/return/{payment['id']}", follow_redirects=False)
        assert back.status_code == 303
        assert back.headers["location"] == f"{base}/pay/{order['id']}"
        deadline = time.monotonic() + 20
        while browser.get(f"/pay/{order['id']}/status").json()["state"] != "paid":
            assert time.monotonic() < deadline, "never paid"
            time.sleep(0.1)
        assert "支付成功" in browser.get(f"/pay/{order['id']}").text
