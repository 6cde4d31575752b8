"""UnionPay over real HTTP: knowpay and the UnionPay simulator each on a port of its own.

The payer's browser goes knowpay's /forms/unionpay → the simulator's frontTransReq.do (which
checks the merchant's certificate signature) → the card page → Pay; the simulator posts the
signed front notification back through the browser to knowpay's /return/{id}, and sends the
signed back notification (signPubKeyCert under its own root and middle CA) to
/notify/unionpay on UnionPay's schedule (time-scaled). Refunds go to backTransReq.do and are
settled by their back notification or by a query to queryTrans.do."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.auth.principals import Role
from knowpay.channels.errors import ChannelDeclined
from knowpay.channels.unionpay import UnionPayChannel, build_channels
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import Settings, UnionPaySettings
from knowpay.kit.db import Database
from knowpay.refunds.models import Refund
from knowpay.refunds.service import SENT_BY_THE_REQUEST_FOR
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app
from knowpay.sandbox.unionpay.pki import new_key
from tests import books
from tests.builders import Builders, Shop
from tests.live import free_port, serve_in_thread

MER_ID = "777290058110042"
TIME_SCALE = 0.0002  # UnionPay's 1-minute wait between sends becomes 12 ms
SHOP_RETURN = "https://shop.example/orders/done"
_FORM = re.compile(r'<form[^>]*method="post" action="([^"]+)"')
_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


def order_id(payment_id: str) -> str:
    """The orderId knowpay gives UnionPay for a payment (`_` → `X`)."""
    return payment_id.replace("_", "X")


def read_form(page: str) -> tuple[str, dict[str, str]]:
    """The first form of a page: where it posts and its hidden fields, unescaped."""
    action = _FORM.search(page)
    assert action is not None, page
    fields = {html.unescape(k): html.unescape(v) for k, v in _INPUT.findall(page)}
    return html.unescape(action.group(1)), fields


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@dataclass
class Sandbox:
    url: str
    keys: dict[str, str]
    http: httpx.Client
    """Talks to /unionpay/… on the simulator."""

    def fault(self, kind: str, payment_id: str | None = None, **spec: Any) -> None:
        body = {"kind": kind, "order_id": order_id(payment_id) if payment_id else None, **spec}
        response = self.http.post("/_faults", json=body)
        assert response.status_code == 201, response.text

    def deliveries(self, payment_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.get(
            "/_notifications", params={"order_id": order_id(payment_id)}
        ).json()
        return found

    def answered(self, payment_id: str, count: int = 1) -> list[dict[str, Any]]:
        """The answers to the first send of the `count`-th notification, once it has them."""
        wait_for(lambda: len(self.deliveries(payment_id)) >= count)
        wait_for(lambda: bool(self.deliveries(payment_id)[count - 1]["attempts"]))
        answers: list[dict[str, Any]] = self.deliveries(payment_id)[count - 1]["attempts"][0][
            "answers"
        ]
        return answers

    def trade(self, payment_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(f"/_trades/{order_id(payment_id)}").json()
        return found

    def pay(self, payment_id: str) -> None:
        response = self.http.post("/_pay", json={"order_id": order_id(payment_id)})
        assert response.status_code == 200, response.text


@dataclass
class World:
    shop: Shop
    knowpay: httpx.Client
    app: FastAPI
    sandbox: Sandbox
    database: Database
    settings: Settings

    def channel(self) -> UnionPayChannel:
        channel = self.app.state.channel_registry.adapter("unionpay")
        assert isinstance(channel, UnionPayChannel)
        return channel

    def order_status(self, order: dict[str, Any]) -> str:
        return str(self.shop.get(f"/v1/orders/{order['id']}")["status"])

    def start(self) -> tuple[dict[str, Any], dict[str, Any]]:
        order = self.shop.order()
        payment = self.shop.pay(order, channel="unionpay", return_url=SHOP_RETURN)
        assert (payment["status"], payment["action"]["type"]) == ("pending", "redirect")
        return order, payment

    def open_at_unionpay(self, payment: dict[str, Any]) -> str:
        """The browser follows the action: knowpay's form page, posted to UnionPay. Returns
        UnionPay's card page."""
        form_page = httpx.get(payment["action"]["url"])
        assert form_page.status_code == 200, form_page.text
        action, fields = read_form(form_page.text)
        assert action == self.sandbox.keys["front_url"]
        card = httpx.post(action, data=fields)
        assert card.status_code == 200
        assert "确认付款" in card.text, card.text
        return card.text

    def pay_in_browser(self, payment: dict[str, Any]) -> httpx.Response:
        """Open, press Pay, and let the front notification take the browser back."""
        pay_action, _ = read_form(self.open_at_unionpay(payment))
        done = httpx.post(pay_action, data={"outcome": "pay"})
        assert done.status_code == 200, done.text
        front_url, front_fields = read_form(done.text)
        assert front_url == f"{self.settings.public_url}/return/{payment['id']}"
        assert front_fields["respCode"] == "00"
        return httpx.post(front_url, data=front_fields)

    def paid(self, order: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """An order paid at UnionPay (without a browser after opening), notified to knowpay."""
        if order is None:
            order, payment = self.start()
        else:
            payment = self.shop.pay(order, channel="unionpay", return_url=SHOP_RETURN)
        self.open_at_unionpay(payment)
        self.sandbox.pay(payment["id"])
        wait_for(lambda: self.order_status(order) == "paid")
        return order, payment

    def refund(self, order: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"order_id": order["id"], "reason": "accidental_purchase", **fields}
        response = self.knowpay.post("/v1/refunds", json=body, headers=self.shop.app.headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def refund_status(self, refund: dict[str, Any]) -> str:
        return str(self.shop.get(f"/v1/refunds/{refund['id']}")["status"])

    def sync(self, payment: dict[str, Any]) -> httpx.Response:
        return self.knowpay.post(
            f"/v1/payments/{payment['id']}/sync", headers=self.shop.app.headers
        )

    def alerts(self) -> list[str]:
        staff = self.shop.build.staff(Role.SUPPORT)
        data = self.knowpay.get("/v1/admin/alerts", headers=staff.headers).json()["data"]
        return [alert["kind"] for alert in data]

    def worker_at(self, moment: datetime) -> dict[str, object]:
        from knowpay.worker.runner import Worker

        registry = self.app.state.channel_registry
        return Worker(self.settings, self.database, FrozenClock(moment), registry).run_jobs_once()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    port = free_port()
    config = SandboxConfig(
        public_url=f"http://127.0.0.1:{port}",
        time_scale=TIME_SCALE,
        gateways={"unionpay": {"mer_id": MER_ID}},
    )
    with (
        serve_in_thread(create_sandbox_app(config), port=port) as url,
        httpx.Client(base_url=f"{url}/unionpay", trust_env=False, timeout=10) as http,
    ):
        keys = http.get("/_keys").json()
        yield Sandbox(url, keys, http)


def unionpay_settings(keys: dict[str, str], **changes: Any) -> UnionPaySettings:
    fields: dict[str, Any] = {
        "mer_id": keys["mer_id"],
        "sign_private_key": keys["merchant_private_key"],
        "sign_cert": keys["merchant_cert"],
        "root_cert": keys["root_cert"],
        "middle_cert": keys["middle_cert"],
        "front_url": keys["front_url"],
        "back_url": keys["back_url"],
        "query_url": keys["query_url"],
        "timeout_s": 2.0,
        **changes,
    }
    return UnionPaySettings(**fields)


@pytest.fixture
def world(sandbox: Sandbox, settings: Settings, database: Database) -> Iterator[World]:
    port = free_port()
    live = settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{port}",
            "unionpay": unionpay_settings(sandbox.keys),
        }
    )
    app = create_app(live, clock=SystemClock(), database=database)
    with (
        serve_in_thread(app, port=port) as url,
        httpx.Client(base_url=url, trust_env=False, timeout=15) as knowpay,
    ):
        shop = Shop(Builders(cast(TestClient, knowpay), database, FrozenClock(datetime.now(UTC))))
        try:
            yield World(shop, knowpay, app, sandbox, database, live)
        finally:
            sandbox.http.post("/_reset")  # no send of this test's notifications outlives it


# Paying ------------------------------------------------------------------------------------


def test_a_payment_in_the_browser_pays_the_order_through_the_signed_back_notification(
    world: World,
) -> None:
    order, payment = world.start()
    back = world.pay_in_browser(payment)
    # The front notification reached knowpay's /return: it asked UnionPay, then sent the
    # browser on to the shop. Only the back notification or a signed query pays an order.
    assert (back.status_code, back.headers["location"]) == (303, SHOP_RETURN)
    wait_for(lambda: world.order_status(order) == "paid")
    trade = world.sandbox.trade(payment["id"])
    paid = world.shop.get(f"/v1/payments/{payment['id']}")
    assert (paid["status"], paid["gateway_trade_no"]) == ("succeeded", trade["query_id"])
    assert (trade["status"], trade["txn_amt"], trade["channel_type"]) == ("paid", 9900, "07")
    [entitlement] = books.entitlements(world.database, world.shop.buyer.id)
    assert entitlement.payment_id == payment["id"]
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert books.violations(world.database) == []
    assert world.sandbox.answered(payment["id"]) == [{"status_code": 200, "body": "ok"}]
    assert [d["delivered"] for d in world.sandbox.deliveries(payment["id"])] == [True]


def test_a_browser_back_before_the_notification_is_answered_at_once_from_the_query(
    world: World,
) -> None:
    """The back notification is lost, so the payment is still pending when the browser
    returns: knowpay asks UnionPay and records the answer in a session of its own, while the
    request's own read is already over (on SQLite it used to hold the write lock, and the
    answer waited for it until the busy timeout)."""
    order, payment = world.start()
    world.sandbox.fault("lost", payment["id"])
    began = time.monotonic()

    back = world.pay_in_browser(payment)

    assert (back.status_code, back.headers["location"]) == (303, SHOP_RETURN)
    assert time.monotonic() - began < 5.0
    assert world.order_status(order) == "paid"  # from UnionPay's answer to the query
    assert world.sandbox.deliveries(payment["id"])[0]["lost"] is True
    assert books.violations(world.database) == []


def test_the_front_form_cannot_be_changed_on_the_way(world: World) -> None:
    _, payment = world.start()
    form_page = httpx.get(payment["action"]["url"])
    action, fields = read_form(form_page.text)
    refused = httpx.post(action, data={**fields, "txnAmt": "1"})
    assert "respCode=11" in refused.text  # 验证签名失败: UnionPay checked the signature


def test_a_lost_notification_is_recovered_by_sync(world: World) -> None:
    order, payment = world.start()
    world.sandbox.fault("lost", payment["id"])
    world.open_at_unionpay(payment)
    assert world.sync(payment).json()["status"] == "pending"  # 34: not a transaction yet
    world.sandbox.pay(payment["id"])
    wait_for(lambda: bool(world.sandbox.deliveries(payment["id"])))
    assert world.sandbox.deliveries(payment["id"])[0]["lost"] is True
    assert world.order_status(order) == "created"
    synced = world.sync(payment)
    assert synced.status_code == 200, synced.text
    assert synced.json()["status"] == "succeeded"
    assert synced.json()["gateway_trade_no"] == world.sandbox.trade(payment["id"])["query_id"]
    assert world.order_status(order) == "paid"
    assert books.violations(world.database) == []


def test_ten_concurrent_duplicates_record_one_capture(world: World) -> None:
    order, payment = world.start()
    world.sandbox.fault("duplicate", payment["id"], count=10)
    world.open_at_unionpay(payment)
    world.sandbox.pay(payment["id"])
    answers = world.sandbox.answered(payment["id"])
    assert len(answers) == 10
    assert {(a["status_code"], a["body"]) for a in answers} == {(200, "ok")}
    assert world.order_status(order) == "paid"
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert len(books.events(world.database, "order.paid")) == 1
    assert [n.outcome for n in books.notifications(world.database)] == ["processed"]
    assert books.violations(world.database) == []


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("forged_signature", {}),
        ("untrusted_cert", {}),
        ("expired_cert", {}),
        ("wrong_cn", {}),
        ("tampered_fields", {"fields": {"merId": "777290058119999"}}),
        ("tampered_amount", {"amount": "1"}),
    ],
)
def test_a_notification_that_is_not_unionpays_word_is_rejected_and_changes_nothing(
    world: World, kind: str, spec: dict[str, Any]
) -> None:
    order, payment = world.start()
    world.sandbox.fault(kind, payment["id"], **spec)
    world.open_at_unionpay(payment)
    before = world.shop.get(f"/v1/payments/{payment['id']}")
    world.sandbox.pay(payment["id"])
    assert world.sandbox.answered(payment["id"]) == [{"status_code": 400, "body": "fail"}]
    # UnionPay sends it five times in all; every send is refused.
    wait_for(lambda: world.sandbox.deliveries(payment["id"])[0]["finished"])
    [delivery] = world.sandbox.deliveries(payment["id"])
    assert len(delivery["attempts"]) == 5
    assert not delivery["delivered"]
    assert world.order_status(order) == "created"
    assert world.shop.get(f"/v1/payments/{payment['id']}") == before
    assert books.entries(world.database, kind="payment_captured") == []
    assert books.events(world.database, "order.paid") == []
    assert "notification_rejected" in world.alerts()
    # The consume is paid at UnionPay all the same: a signed query answer settles it.
    assert world.sync(payment).json()["status"] == "succeeded"
    assert books.violations(world.database) == []


def test_a_query_answer_that_does_not_verify_is_no_answer(world: World) -> None:
    order, payment = world.start()
    world.sandbox.fault("lost", payment["id"])
    world.open_at_unionpay(payment)
    world.sandbox.pay(payment["id"])
    world.sandbox.fault("untrusted_cert", payment["id"], target="response", times=1)
    synced = world.sync(payment)
    assert (synced.status_code, synced.json()["code"]) == (503, "channel_unavailable")
    assert world.order_status(order) == "created"
    assert world.sync(payment).json()["status"] == "succeeded"


def test_a_request_signed_with_another_key_is_refused_as_unionpay_refuses_it(
    world: World,
) -> None:
    key = new_key()
    from cryptography.hazmat.primitives import serialization

    wrong_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    wrong = world.settings.model_copy(
        update={"unionpay": unionpay_settings(world.sandbox.keys, sign_private_key=wrong_pem)}
    )
    channel = build_channels(wrong, SystemClock())["unionpay"]
    _, payment = world.start()
    with pytest.raises(ChannelDeclined) as refused:
        channel.query_payment(payment["id"])
    assert refused.value.code == "11"


# Refunds -----------------------------------------------------------------------------------


def test_refunds_are_settled_by_unionpays_refund_notification(world: World) -> None:
    order, payment = world.paid()
    partial = world.refund(order, amount=3000)
    # UnionPay accepts a refund (respCode 00); its result comes by back notification.
    assert partial["status"] in ("processing", "succeeded"), partial
    wait_for(lambda: world.refund_status(partial) == "succeeded")
    assert world.order_status(order) == "partially_refunded"
    rest = world.refund(order)
    assert rest["amount"] == 6900
    wait_for(lambda: world.refund_status(rest) == "succeeded")
    assert world.order_status(order) == "refunded"
    trade = world.sandbox.trade(payment["id"])
    assert (trade["refunded"], [r["amount"] for r in trade["refunds"]]) == (9900, [3000, 6900])
    notes = world.sandbox.deliveries(payment["id"])
    assert [d["txn_type"] for d in notes] == ["01", "04", "04"]
    # The simulator marks a delivery once knowpay's answer is back, a moment after the
    # refund it settled shows succeeded (seen once in make test as a race).
    wait_for(lambda: all(d["delivered"] for d in world.sandbox.deliveries(payment["id"])))
    with world.database.session_scope(read_only=True) as session:
        stored = session.get(Refund, partial["id"])
        assert stored is not None
        assert stored.gateway_refund_no == trade["refunds"][0]["query_id"]
    assert books.violations(world.database) == []


def test_a_refund_whose_notification_is_lost_is_settled_by_the_workers_query(
    world: World,
) -> None:
    order, payment = world.paid()
    world.sandbox.fault("lost", payment["id"])  # the refund's notification goes missing
    refund = world.refund(order)
    assert (refund["status"], refund["amount"]) == ("processing", 9900)
    wait_for(lambda: len(world.sandbox.deliveries(payment["id"])) == 2)
    assert world.sandbox.deliveries(payment["id"])[1]["lost"] is True
    assert world.refund_status(refund) == "processing"
    # The worker asks UnionPay once the refund has waited `check_after_s` (60 s): a minute on.
    world.worker_at(datetime.now(UTC) + timedelta(seconds=61))
    assert world.refund_status(refund) == "succeeded"
    assert world.order_status(order) == "refunded"
    assert books.violations(world.database) == []


def test_a_refund_unionpay_could_not_answer_is_sent_again_by_the_worker(world: World) -> None:
    order, payment = world.paid()
    world.sandbox.fault("http_5xx", None, times=10, endpoints=["backTransReq.do"])
    refund = world.refund(order)
    assert refund["status"] == "processing"
    assert world.sandbox.trade(payment["id"])["refunds"] == []  # nothing reached UnionPay
    assert books.violations(world.database) == []
    world.sandbox.http.delete("/_faults")  # UnionPay is back
    world.worker_at(datetime.now(UTC) + SENT_BY_THE_REQUEST_FOR)  # the request's turn is over
    wait_for(lambda: world.refund_status(refund) == "succeeded")
    [at_unionpay] = world.sandbox.trade(payment["id"])["refunds"]
    assert at_unionpay["amount"] == 9900
    assert world.order_status(order) == "refunded"
    assert books.violations(world.database) == []


def test_a_refund_resent_after_a_lost_answer_is_not_done_twice(world: World) -> None:
    order, payment = world.paid()
    channel = world.channel()
    from knowpay.channels.types import ChannelStatus, RefundRequest
    from knowpay.kit.ids import new_id
    from knowpay.kit.money import Money

    request = RefundRequest(
        out_trade_no=payment["id"],
        out_refund_no=new_id("re"),
        amount=Money(1000, "CNY"),
        total=Money(9900, "CNY"),
        reason="退课",
        notify_url=f"{world.settings.public_url}/notify/unionpay",
        gateway_trade_no=world.sandbox.trade(payment["id"])["query_id"],
    )
    first = channel.refund(request)
    assert first.status is ChannelStatus.PENDING
    again = channel.refund(request)  # UnionPay answers 12 (duplicate); the query decides
    assert (again.status, again.gateway_refund_no) == (
        ChannelStatus.SUCCEEDED,
        first.gateway_refund_no,
    )
    assert [r["amount"] for r in world.sandbox.trade(payment["id"])["refunds"]] == [1000]
    assert world.order_status(order) == "paid"


# Closing -----------------------------------------------------------------------------------


def test_closing_an_order_cannot_close_the_front_consume_so_a_late_payment_is_owed_back(
    world: World,
) -> None:
    order, payment = world.start()
    world.open_at_unionpay(payment)
    # UnionPay has no close: within payTimeout the adapter can only say "pending", and
    # knowpay's order close gives the attempt up all the same.
    assert world.channel().close_payment(payment["id"]).status.value == "pending"
    closed = world.knowpay.post(f"/v1/orders/{order['id']}/close", headers=world.shop.app.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    # The payer still holds the signed form and pays before payTimeout: the capture is
    # recorded (the gateway is the truth about money) as a duplicate owed back.
    world.sandbox.pay(payment["id"])
    assert world.sandbox.answered(payment["id"]) == [{"status_code": 200, "body": "ok"}]
    late = world.shop.get(f"/v1/payments/{payment['id']}")
    assert (late["status"], late["is_duplicate"]) == ("succeeded", True)
    assert world.order_status(order) == "closed"
    assert books.entitlements(world.database, world.shop.buyer.id) == []
    assert books.violations(world.database) == []
