"""Alipay over real HTTP: knowpay and the Alipay simulator each on a port of its own; the
simulator verifies knowpay's RSA2 requests, keeps its own trades, and sends signed
notifications to knowpay's /notify/alipay on Alipay's retry schedule (time-scaled)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from alipay import AliPay
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.auth.principals import Role
from knowpay.channels.alipay import AlipayChannel
from knowpay.channels.alipay.client import AlipayClient
from knowpay.channels.errors import ChannelDeclined
from knowpay.channels.types import ChannelStatus, CreatePaymentRequest, RefundRequest
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import AlipaySettings, ChannelHealthSettings, Settings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.reconciliation import service as reconciliation
from knowpay.reconciliation import tasks as reconciliation_tasks
from knowpay.refunds.service import SENT_BY_THE_REQUEST_FOR
from knowpay.sandbox.alipay import crypto
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app
from tests import books
from tests.builders import Builders, Shop
from tests.live import free_port, serve_in_thread

APP_ID = "2021000000000042"
SELLER_ID = "2088000000000042"
TIME_SCALE = 0.0002  # Alipay's 4-minute first retry becomes 48 ms
BEIJING_OFFSET = timedelta(hours=8)


@dataclass
class Sandbox:
    url: str
    keys: dict[str, str]
    http: httpx.Client
    """Talks to /alipay/… on the simulator."""

    def fault(self, kind: str, out_trade_no: str | None = None, **spec: Any) -> None:
        body = {"kind": kind, "out_trade_no": out_trade_no, **spec}
        assert self.http.post("/_faults", json=body).status_code == 201

    def deliveries(self, out_trade_no: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.http.get(
            "/_notifications", params={"out_trade_no": out_trade_no}
        ).json()
        return result

    def answered(self, out_trade_no: str, count: int = 1) -> list[dict[str, Any]]:
        """The answers to the first try of the `count`-th notification, once it has them."""
        wait_for(lambda: len(self.deliveries(out_trade_no)) >= count)
        wait_for(lambda: bool(self.deliveries(out_trade_no)[count - 1]["attempts"]))
        answers: list[dict[str, Any]] = self.deliveries(out_trade_no)[count - 1]["attempts"][0][
            "answers"
        ]
        return answers


@dataclass
class World:
    shop: Shop
    knowpay: httpx.Client
    app: FastAPI
    sandbox: Sandbox
    database: Database

    def channel(self, name: str = "alipay_qr") -> AlipayChannel:
        channel = self.app.state.channel_registry.adapter(name)
        assert isinstance(channel, AlipayChannel)
        return channel

    def order_status(self, order: dict[str, Any]) -> str:
        return str(self.shop.get(f"/v1/orders/{order['id']}")["status"])

    def pay_at_alipay(self, payment: dict[str, Any]) -> None:
        """The buyer pays as a browser would: through the cashier, or by scanning the QR."""
        action = payment["action"]
        if action["type"] == "qr_code":
            response = httpx.post(action["code_url"], data={"outcome": "pay"})
            assert response.status_code == 200, response.text
            return
        cashier = httpx.get(action["url"])
        assert "收银台" in cashier.text, cashier.text
        form = re.search(r'action="([^"]+)"', cashier.text)
        assert form is not None
        paid = httpx.post(form.group(1), data={"outcome": "pay"})
        assert paid.status_code in (200, 303), paid.text

    def alerts(self) -> list[str]:
        staff = self.shop.build.staff(Role.SUPPORT)
        data = self.knowpay.get("/v1/admin/alerts", headers=staff.headers).json()["data"]
        return [alert["kind"] for alert in data]


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    return crypto.private_pem(key), crypto.public_pem(key.public_key())


@pytest.fixture(scope="module")
def merchant_key() -> tuple[str, str]:
    """The merchant's app key pair: the private half for knowpay, the public for Alipay."""
    return _pem(crypto.generate_key())


@pytest.fixture(scope="module")
def sandbox(merchant_key: tuple[str, str]) -> Iterator[Sandbox]:
    port = free_port()
    config = SandboxConfig(
        public_url=f"http://127.0.0.1:{port}",
        time_scale=TIME_SCALE,
        gateways={
            "alipay": {
                "app_id": APP_ID,
                "seller_id": SELLER_ID,
                "merchant_public_key": merchant_key[1],
            }
        },
    )
    with (
        serve_in_thread(create_sandbox_app(config), port=port) as url,
        httpx.Client(base_url=f"{url}/alipay", trust_env=False, timeout=10) as http,
    ):
        keys = http.get("/_keys").json()
        assert "merchant_private_key" not in keys  # the merchant's key was given, not made
        yield Sandbox(url, keys, http)


@pytest.fixture
def world(
    sandbox: Sandbox,
    settings: Settings,
    database: Database,
    merchant_key: tuple[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[World]:
    marker = request.node.get_closest_marker("channel_health")
    if marker is not None:  # e.g. a breaker that opens after 3 failures for 1 s
        settings = settings.model_copy(update={"channels": ChannelHealthSettings(**marker.kwargs)})
    port = free_port()
    alipay = AlipaySettings(
        app_id=APP_ID,
        private_key=merchant_key[0],
        alipay_public_key=sandbox.keys["alipay_public_key"],
        gateway_url=sandbox.keys["gateway_url"],
        seller_id=SELLER_ID,
        timeout_s=1.0,
    )
    live = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "alipay": alipay})
    app = create_app(live, clock=SystemClock(), database=database)
    with (
        serve_in_thread(app, port=port) as url,
        httpx.Client(base_url=url, trust_env=False, timeout=15) as knowpay,
    ):
        shop = Shop(Builders(cast(TestClient, knowpay), database, FrozenClock()))
        try:
            yield World(shop, knowpay, app, sandbox, database)
        finally:
            sandbox.http.post("/_reset")  # no retry of this test's notifications outlives it


@pytest.mark.parametrize("channel", ["alipay_page", "alipay_wap", "alipay_qr"])
def test_a_payment_at_alipay_pays_the_order_through_its_signed_notification(
    world: World, channel: str
) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel=channel, return_url="https://shop.example/done")
    assert payment["status"] == "pending"
    assert payment["action"]["type"] == ("qr_code" if channel == "alipay_qr" else "redirect")
    world.pay_at_alipay(payment)
    wait_for(lambda: world.order_status(order) == "paid")
    paid = world.shop.get(f"/v1/payments/{payment['id']}")
    trade = world.sandbox.http.get(f"/_trades/{payment['id']}").json()
    assert (paid["status"], paid["gateway_trade_no"]) == ("succeeded", trade["trade_no"])
    [entitlement] = books.entitlements(world.database, world.shop.buyer.id)
    assert entitlement.payment_id == payment["id"]
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert books.violations(world.database) == []
    assert world.sandbox.answered(payment["id"]) == [{"status_code": 200, "body": "success"}]


def test_the_cashier_sends_the_buyer_back_through_knowpay_which_asks_alipay_first(
    world: World, merchant_key: tuple[str, str]
) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_page", return_url="https://s.example/r")
    world.sandbox.fault("lost", payment["id"])  # no notification: only the return can tell
    cashier = httpx.get(payment["action"]["url"])
    form = re.search(r'action="([^"]+)"', cashier.text)
    assert form is not None
    back = httpx.post(form.group(1), data={"outcome": "pay"})
    assert back.status_code == 303
    knowpay_return = back.headers["location"]
    assert knowpay_return.startswith(
        f"{str(world.knowpay.base_url).rstrip('/')}/return/{payment['id']}?"
    )
    params = dict(httpx.URL(knowpay_return).params)
    sdk = AliPay(APP_ID, None, merchant_key[0], world.sandbox.keys["alipay_public_key"])
    signature = params.pop("sign")
    assert sdk.verify(params, signature)
    onward = httpx.get(knowpay_return)
    assert (onward.status_code, onward.headers["location"]) == (303, "https://s.example/r")
    assert world.order_status(order) == "paid"  # from Alipay's answer, not the browser's word
    assert books.violations(world.database) == []


def test_a_lost_notification_is_recovered_by_active_query(world: World) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.sandbox.fault("lost", payment["id"])
    world.pay_at_alipay(payment)
    wait_for(lambda: bool(world.sandbox.deliveries(payment["id"])))
    assert world.sandbox.deliveries(payment["id"])[0]["lost"] is True
    assert world.order_status(order) == "created"
    synced = world.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=world.shop.app.headers
    )
    assert synced.status_code == 200, synced.text
    assert synced.json()["status"] == "succeeded"
    assert world.order_status(order) == "paid"
    assert books.violations(world.database) == []


def test_ten_concurrent_duplicates_record_one_capture(world: World) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.sandbox.fault("duplicate", payment["id"], count=10)
    world.pay_at_alipay(payment)
    answers = world.sandbox.answered(payment["id"])
    assert len(answers) == 10
    assert {(a["status_code"], a["body"]) for a in answers} == {(200, "success")}
    assert world.order_status(order) == "paid"
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert len(books.events(world.database, "order.paid")) == 1
    assert [n.outcome for n in books.notifications(world.database)] == ["processed"]
    assert books.violations(world.database) == []


def test_notifications_out_of_order_pay_once_and_the_older_one_changes_nothing(
    world: World,
) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.sandbox.fault("out_of_order", payment["id"], delay_s=2.0)
    # The older notification, when its turn comes, waits half a second: time to look between.
    world.sandbox.fault("delayed", payment["id"], times=1, delay_s=0.5)
    world.pay_at_alipay(payment)
    finished = world.sandbox.http.post(f"/_trades/{payment['id']}/finish")
    assert finished.json()["status"] == "TRADE_FINISHED"
    assert world.order_status(order) == "created"
    held = world.sandbox.deliveries(payment["id"])
    assert [(d["trade_status"], d["held"]) for d in held] == [
        ("TRADE_SUCCESS", True),
        ("TRADE_FINISHED", True),
    ]
    wait_for(lambda: world.order_status(order) == "paid")
    before = (world.shop.get(f"/v1/payments/{payment['id']}"), books.events(world.database))
    assert len(books.notifications(world.database)) == 1  # only TRADE_FINISHED so far
    wait_for(lambda: all(d["delivered"] for d in world.sandbox.deliveries(payment["id"])))
    sent = sorted(world.sandbox.deliveries(payment["id"]), key=lambda d: d["attempts"][0]["at"])
    assert [d["trade_status"] for d in sent] == ["TRADE_FINISHED", "TRADE_SUCCESS"]
    assert [d["attempts"][0]["answers"] for d in sent] == [
        [{"status_code": 200, "body": "success"}]
    ] * 2
    after = (world.shop.get(f"/v1/payments/{payment['id']}"), books.events(world.database))
    assert after == before
    assert world.order_status(order) == "paid"
    assert before[0]["status"] == "succeeded"
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert len(books.events(world.database, "order.paid")) == 1
    assert [n.outcome for n in books.notifications(world.database)] == ["processed"] * 2
    assert books.violations(world.database) == []


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("forged_signature", {}),
        ("tampered_fields", {"fields": {"app_id": "2021000000009999"}}),
        ("tampered_fields", {"fields": {"seller_id": "2088000000009999"}}),
        ("tampered_amount", {"amount": "0.01"}),
    ],
    ids=["forged-signature", "wrong-app-id", "wrong-seller-id", "tampered-amount"],
)
def test_a_notification_that_is_not_alipays_word_is_rejected(
    world: World, kind: str, spec: dict[str, Any]
) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.sandbox.fault(kind, payment["id"], **spec)
    world.pay_at_alipay(payment)
    assert world.sandbox.answered(payment["id"]) == [{"status_code": 200, "body": "failure"}]
    assert world.order_status(order) == "created"
    assert books.entries(world.database, kind="payment_captured") == []
    assert "notification_rejected" in world.alerts()
    # The trade is paid at Alipay all the same: an active query settles it from a signed answer.
    synced = world.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=world.shop.app.headers
    )
    assert synced.json()["status"] == "succeeded"
    assert books.violations(world.database) == []


def test_a_notification_for_a_trade_that_is_not_ours_is_acknowledged_and_alerted(
    world: World,
) -> None:
    request = CreatePaymentRequest(
        out_trade_no="pay_not_ours",
        amount=Money(100, "CNY"),
        subject="someone else's",
        notify_url=f"{world.app.state.settings.public_url}/notify/alipay",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    created = world.channel().create_payment(request)
    assert httpx.post(created.action.code_url or "", data={"outcome": "pay"}).status_code == 200
    assert world.sandbox.answered("pay_not_ours") == [{"status_code": 200, "body": "success"}]
    assert world.alerts() == ["notification_unknown_trade"]


def test_a_refund_over_the_protocol_and_the_days_bill(world: World) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.pay_at_alipay(payment)
    wait_for(lambda: world.order_status(order) == "paid")
    channel = world.channel()

    def refund(number: str, minor: int) -> RefundRequest:
        return RefundRequest(
            payment["id"], number, Money(minor, "CNY"), Money(9900, "CNY"), "退课", ""
        )

    assert channel.refund(refund("re_a", 1000)).status is ChannelStatus.SUCCEEDED
    assert channel.refund(refund("re_a", 1000)).status is ChannelStatus.SUCCEEDED  # a retry
    too_much = channel.refund(refund("re_b", 9000))
    assert (too_much.status, too_much.failure_code) == (
        ChannelStatus.FAILED,
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    )
    assert channel.query_refund(payment["id"], "re_a").status is ChannelStatus.SUCCEEDED
    assert channel.query_refund(payment["id"], "re_b").status is ChannelStatus.PENDING
    assert world.sandbox.http.get(f"/_trades/{payment['id']}").json()["refunded"] == "10.00"
    today = (datetime.now(UTC) + BEIJING_OFFSET).date()
    lines = [(line.kind, line.amount.amount_minor) for line in channel.fetch_bill(today).lines
             if line.out_trade_no == payment["id"]]  # fmt: skip
    assert lines == [("payment", 9900), ("refund", 1000)]


def test_the_days_bill_reconciles_with_the_books_payment_and_refund_alike(world: World) -> None:
    """Reconciliation against the simulator's real zipped bill: knowpay's capture and its
    refund, both made over the protocol, each match a line of the day's bill."""
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.pay_at_alipay(payment)
    wait_for(lambda: world.order_status(order) == "paid")
    refunded = world.knowpay.post(
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 1500, "reason": "other"},
        headers=world.shop.app.headers,
    )
    assert refunded.status_code == 201, refunded.text
    refund_id = refunded.json()["id"]
    wait_for(lambda: world.shop.get(f"/v1/refunds/{refund_id}")["status"] == "succeeded")
    source = reconciliation_tasks.bill_sources(world.app.state.channel_registry)["alipay"]
    now = datetime.now(UTC)
    today = (now + BEIJING_OFFSET).date()
    bill = source.fetch(today)
    with world.database.session_scope() as session:
        run_id = reconciliation.start_run(session, "alipay", today, "finance:x", now).id
        reconciliation.finish_run(session, run_id, source, bill, now)
        ours = [
            (d.kind, d.line_kind)
            for d in reconciliation.discrepancies_of(session, run_id)
            if payment["id"] in (d.payment_id, d.out_trade_no)
        ]
        run = reconciliation.get_run(session, run_id)
        matched, lines = run.matched, run.bill_lines
    assert ours == []  # the payment and the refund each matched their line
    assert lines >= 2
    assert matched >= 2


def test_closing_an_order_closes_the_trade_at_alipay(world: World) -> None:
    order = world.shop.order()
    opened = world.shop.pay(order, channel="alipay_page")
    httpx.get(opened["action"]["url"])  # the buyer opened the cashier: the trade exists
    never_scanned = world.shop.pay(order, channel="alipay_qr")
    closed = world.knowpay.post(f"/v1/orders/{order['id']}/close", headers=world.shop.app.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    for payment in (opened, never_scanned):
        assert world.shop.get(f"/v1/payments/{payment['id']}")["status"] == "closed"
    assert world.sandbox.http.get(f"/_trades/{opened['id']}").json()["status"] == "TRADE_CLOSED"
    assert world.sandbox.answered(opened["id"]) == [{"status_code": 200, "body": "success"}]
    late = httpx.get(opened["action"]["url"])
    assert "TRADE_HAS_CLOSE" in late.text


def test_outages_are_retried_for_queries_and_fail_only_the_attempt_for_creates(
    world: World,
) -> None:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.sandbox.fault("lost", payment["id"])
    world.pay_at_alipay(payment)
    query = ["alipay.trade.query"]
    world.sandbox.fault("http_5xx", payment["id"], times=1, methods=query)
    world.sandbox.fault("timeout", payment["id"], times=1, seconds=1.5, methods=query)
    synced = world.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=world.shop.app.headers
    )
    assert synced.json()["status"] == "succeeded"
    world.sandbox.fault("http_5xx", None, methods=["alipay.trade.precreate"])
    response = world.knowpay.post(
        f"/v1/orders/{world.shop.order()['id']}/payments",
        json={"channel": "alipay_qr"},
        headers=world.shop.app.headers,
    )
    assert (response.status_code, response.json()["code"]) == (503, "channel_unavailable")


def test_a_request_signed_with_another_key_is_refused_as_alipay_refuses_it(world: World) -> None:
    wrong = world.app.state.settings.alipay.model_copy(
        update={"private_key": crypto.private_pem(crypto.generate_key())}
    )
    channel = AlipayChannel("alipay_qr", "qr", AlipayClient(wrong, SystemClock()))
    request = CreatePaymentRequest("pay_wrong_key", Money(100, "CNY"), "x", "http://x/n",
                                   datetime.now(UTC) + timedelta(minutes=5))  # fmt: skip
    with pytest.raises(ChannelDeclined) as refused:
        channel.create_payment(request)
    assert refused.value.code == "isv.invalid-signature"
    assert "验签出错" in refused.value.message


def test_the_independent_sdk_talks_to_the_simulator(
    sandbox: Sandbox, merchant_key: tuple[str, str]
) -> None:
    """python-alipay-sdk, pointed at the simulator: its signatures pass the simulator's checks
    and the simulator's answers pass its verification."""
    sdk = AliPay(APP_ID, None, merchant_key[0], sandbox.keys["alipay_public_key"])
    sdk._gateway = sandbox.keys["gateway_url"]
    created = sdk.api_alipay_trade_precreate("sdk", "pay_sdk_1", "0.01", notify_url=None)
    assert created["qr_code"].startswith(sandbox.url)
    assert sdk.api_alipay_trade_query(out_trade_no="pay_sdk_1")["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    httpx.get(created["qr_code"])  # scanned
    assert sdk.api_alipay_trade_query(out_trade_no="pay_sdk_1")["trade_status"] == "WAIT_BUYER_PAY"


def _paid_at_alipay(world: World) -> dict[str, Any]:
    order = world.shop.order()
    payment = world.shop.pay(order, channel="alipay_qr")
    world.pay_at_alipay(payment)
    wait_for(lambda: world.order_status(order) == "paid")
    return order


def _ask_refund(world: World, order: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"order_id": order["id"], "reason": "accidental_purchase", **fields}
    response = world.knowpay.post("/v1/refunds", json=body, headers=world.shop.app.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_partial_then_full_refund_of_an_order_through_alipay(world: World) -> None:
    order = _paid_at_alipay(world)
    payment_id = world.shop.get(f"/v1/orders/{order['id']}")["payment_id"]
    partial = _ask_refund(world, order, amount=3000)
    # The server's clock is real, the order was paid "now": small and early, so automatic.
    assert partial["status"] == "succeeded", partial
    assert [s["step"] for s in partial["timeline"]][-2:] == ["sent_to_gateway", "money_returned"]
    assert world.order_status(order) == "partially_refunded"
    rest = _ask_refund(world, order)
    assert (rest["status"], rest["amount"]) == ("succeeded", 6900)
    assert world.order_status(order) == "refunded"
    trade = world.sandbox.http.get(f"/_trades/{payment_id}").json()
    assert trade["refunded"] == "99.00"
    assert books.violations(world.database) == []


def test_a_refund_alipay_refuses_fails_with_alipays_code_and_moves_no_money(world: World) -> None:
    order = _paid_at_alipay(world)
    payment_id = world.shop.get(f"/v1/orders/{order['id']}")["payment_id"]
    # A trade past its refund period is TRADE_FINISHED: Alipay answers ACQ.TRADE_HAS_FINISHED.
    assert world.sandbox.http.post(f"/_trades/{payment_id}/finish").status_code == 200
    refund = _ask_refund(world, order)
    assert (refund["status"], refund["failure_code"]) == ("failed", "ACQ.TRADE_HAS_FINISHED")
    assert "交易已完结" in refund["failure_message"]
    assert world.order_status(order) == "paid"
    assert world.sandbox.http.get(f"/_trades/{payment_id}").json()["refunded"] == "0.00"
    assert books.violations(world.database) == []


def test_a_refund_alipay_could_not_answer_is_sent_again_by_the_worker(world: World) -> None:
    from knowpay.worker.runner import Worker

    order = _paid_at_alipay(world)
    world.sandbox.fault("http_5xx", None, times=10, methods=["alipay.trade.refund"])
    refund = _ask_refund(world, order)
    assert refund["status"] == "processing"
    assert books.violations(world.database) == []
    world.sandbox.http.delete("/_faults")  # Alipay is back
    settings = world.app.state.settings
    after_the_request = FrozenClock(datetime.now(UTC) + SENT_BY_THE_REQUEST_FOR)
    Worker(
        settings, world.database, after_the_request, world.app.state.channel_registry
    ).run_jobs_once()
    after = world.knowpay.get(f"/v1/refunds/{refund['id']}", headers=world.shop.app.headers).json()
    assert after["status"] == "succeeded", after
    assert world.order_status(order) == "refunded"
    assert books.violations(world.database) == []


def test_money_from_a_blacklisted_payer_account_is_recorded_and_raises_an_alert(
    world: World,
) -> None:
    finance = world.shop.build.staff(Role.FINANCE)
    listed = world.knowpay.post(
        "/v1/admin/risk/blacklist",
        json={"kind": "payer_account", "value": "2088102177846875", "reason": "chargebacks"},
        headers=finance.headers,
    )
    assert listed.status_code == 201, listed.text
    order = world.shop.order()
    world.pay_at_alipay(world.shop.pay(order, channel="alipay_qr"))
    wait_for(lambda: world.order_status(order) == "paid")  # the gateway has the money
    wait_for(lambda: "risk.blacklisted_payer" in world.alerts())
    staff = world.shop.build.staff(Role.SUPPORT)
    alerts = world.knowpay.get("/v1/admin/alerts", headers=staff.headers).json()["data"]
    [alert] = [a for a in alerts if a["kind"] == "risk.blacklisted_payer"]
    assert "2088102177846875" not in alert["message"]  # masked
    assert "6875" in alert["message"]
