"""knowpay and the WeChat Pay simulator wired to each other over real HTTP, for the contract
tests: each on a free port, the simulator's keys in knowpay's settings, and helpers to drive
the payer's side and read both books."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request, Response

from knowpay.app import create_app
from knowpay.auth.principals import Role
from knowpay.channels.base import Channel
from knowpay.channels.registry import ChannelRegistry
from knowpay.channels.wechatpay.adapter import build_channels
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import Settings, WechatPaySettings
from knowpay.kit.db import Database
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app
from knowpay.sandbox.wechatpay.simulator import Simulator
from tests import books
from tests.builders import Builders, Caller, Shop
from tests.channels.wechatpay.material import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    private_pem,
    public_pem,
    rsa_key,
)
from tests.live import free_port, serve_in_thread

T = TypeVar("T")
BEIJING = timezone(timedelta(hours=8))
TIME_SCALE = 0.001  # WeChat's 15 s first retry becomes 15 ms
PAYER_DETAILS: dict[str, dict[str, str]] = {
    "wechat_native": {},
    "wechat_jsapi": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "wechat_h5": {"client_ip": "203.0.113.9", "return_url": "https://shop.example.com/orders/1"},
}


@dataclass
class Wired:
    knowpay: httpx.Client
    sandbox: httpx.Client
    simulator: Simulator
    registry: ChannelRegistry
    shop: Shop
    staff: Caller
    settings: Settings

    def channel(self, name: str = "wechat_native") -> Channel:
        return self.registry.adapter(name)

    def pay(self, order: dict[str, Any], channel: str = "wechat_native") -> dict[str, Any]:
        return self.shop.pay(order, channel=channel, **PAYER_DETAILS[channel])

    def faults(self, **faults: Any) -> None:
        response = self.sandbox.post("/wechatpay/_faults", json=faults)
        assert response.status_code == 200, response.text

    def pay_at_wechat(self, payment_id: str) -> dict[str, Any]:
        response = self.sandbox.post(f"/wechatpay/_trades/{payment_id}/pay")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def trade(self, payment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.sandbox.get(f"/wechatpay/_trades/{payment_id}").json()
        return result

    def order_status(self, order_id: str) -> str:
        return str(self.shop.get(f"/v1/orders/{order_id}")["status"])

    def replies(self, payment_id: str) -> list[dict[str, Any]]:
        """Every answer knowpay gave the simulator's callbacks for this trade."""
        return [
            reply
            for note in self.trade(payment_id)["notifications"]
            for attempt in note["attempts"]
            for reply in attempt["replies"]
        ]

    def alerts(self) -> list[dict[str, Any]]:
        response = self.knowpay.get("/v1/admin/alerts", headers=self.staff.headers)
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data


def wait_for(check: Callable[[], T], what: str, timeout_s: float = 10.0) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _gateway_section(key_mode: str) -> dict[str, str]:
    section = {
        "mchid": MCHID,
        "appid": APPID,
        "apiv3_key": APIV3_KEY,
        "merchant_public_key": public_pem(rsa_key("merchant")),
        "merchant_serial_no": MERCHANT_SERIAL,
        "platform_private_key": private_pem(rsa_key("platform")),
        "key_mode": key_mode,
    }
    if key_mode == "public_key":
        section["platform_serial"] = PUBLIC_KEY_ID
    return section


def _merchant_settings(keys: dict[str, str], sandbox_url: str, key_mode: str) -> WechatPaySettings:
    fields: dict[str, Any] = {
        "mchid": keys["mchid"],
        "appid": keys["appid"],
        "merchant_private_key": keys["merchant_private_key"],
        "merchant_serial_no": keys["merchant_serial_no"],
        "apiv3_key": keys["apiv3_key"],
        "base_url": sandbox_url + "/wechatpay",
        "timeout_s": 5.0,
    }
    if key_mode == "public_key":  # else: certificate mode, fetched from /v3/certificates
        fields["platform_public_key"] = keys["platform_public_key"]
        fields["platform_serial_no"] = keys["platform_serial_no"]
    return WechatPaySettings(**fields)


@contextmanager
def serve_simulator(
    key_mode: str = "public_key", generated: bool = False
) -> Iterator[tuple[str, Simulator]]:
    """The sandbox on a free port: our test keys, or keys it generates itself."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    section = {"key_mode": key_mode} if generated else _gateway_section(key_mode)
    app = create_sandbox_app(
        SandboxConfig(public_url=url, time_scale=TIME_SCALE, gateways={"wechatpay": section})
    )
    mounted = next(r for r in app.routes if getattr(r, "path", "") == "/wechatpay")
    simulator: Simulator = mounted.app.state.simulator  # type: ignore[attr-defined]
    try:
        with serve_in_thread(app, port=port):
            yield url, simulator
    finally:
        simulator.stop()


@contextmanager
def wire(
    settings: Settings, database: Database, sandbox: tuple[str, Simulator], key_mode: str
) -> Iterator[Wired]:
    """knowpay on a free port, pointed at the running simulator and it at knowpay."""
    sandbox_url, simulator = sandbox
    knowpay_port = free_port()
    with httpx.Client(base_url=sandbox_url, trust_env=False, timeout=15) as sandbox_client:
        keys = sandbox_client.get("/wechatpay/_keys").json()
        keys.setdefault("merchant_private_key", private_pem(rsa_key("merchant")))
        live = settings.model_copy(
            update={
                "public_url": f"http://127.0.0.1:{knowpay_port}",
                "wechatpay": _merchant_settings(keys, sandbox_url, key_mode),
            }
        )
        app = create_app(live, clock=SystemClock(), database=database)
        with (
            serve_in_thread(app, port=knowpay_port) as knowpay_url,
            httpx.Client(base_url=knowpay_url, trust_env=False, timeout=15) as knowpay,
        ):
            build = Builders(knowpay, database, FrozenClock(datetime.now(UTC)))  # type: ignore[arg-type]
            yield Wired(
                knowpay=knowpay,
                sandbox=sandbox_client,
                simulator=simulator,
                registry=app.state.channel_registry,
                shop=Shop(build),
                staff=build.staff(Role.ADMIN),
                settings=live,
            )


def paid_once(wired: Wired, database: Database, order: dict[str, Any], payment_id: str) -> None:
    wait_for(lambda: wired.order_status(order["id"]) == "paid", "the order to be paid")
    payment = wired.shop.get(f"/v1/payments/{payment_id}")
    assert payment["status"] == "succeeded"
    assert payment["gateway_trade_no"] == wired.trade(payment_id)["transaction_id"]
    assert [e.payment_id for e in books.entries(database, kind="payment_captured")] == [payment_id]
    assert [e.product_id for e in books.entitlements(database, wired.shop.buyer.id)] == [
        wired.shop.course["id"]
    ]
    assert books.violations(database) == []


def click(wired: Wired, page_url: str) -> httpx.Response:
    """Open the payer's page and press its first button (pay), as a browser would."""
    page = wired.sandbox.get(page_url)
    assert page.status_code == 200, page.text
    assert "¥99.00" in page.text
    action = html.unescape(re.findall(r"<form method='post' action='([^']+)'", page.text)[0])
    return wired.sandbox.post(action, follow_redirects=False)


def channel_with(wired: Wired, **changes: Any) -> Channel:
    """Another merchant configuration against the same simulator."""
    changed = wired.settings.wechatpay.model_copy(update=changes)
    built = build_channels(wired.settings.model_copy(update={"wechatpay": changed}), SystemClock())
    return built["wechat_native"]


@contextmanager
def callback_catcher() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/notify")
    async def notify(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    with serve_in_thread(app) as url:
        yield url + "/notify", received
