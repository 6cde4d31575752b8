"""PayPal over real HTTP: knowpay and the PayPal simulator each on a port of its own.

The simulator speaks Orders v2 and Payments v2 with OAuth tokens and PayPal-Request-Id
idempotency, shows the buyer an approval page that sends the browser back to knowpay's
/return/{payment_id}, and delivers webhooks signed with its certificate to knowpay's
/notify/paypal on PayPal's retry schedule (time-scaled). knowpay verifies them by postback
(the default) or offline with the certificate, captures on return, on the approval webhook or
from the active-query job, and never charges twice."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.auth.principals import Role
from knowpay.channels.paypal import PayPalChannel
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import PayPalSettings, Settings
from knowpay.kit.db import Database
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app
from tests import books
from tests.builders import Builders, Shop
from tests.live import free_port, serve_in_thread

CLIENT_ID = "AS-knowpay-contract-client"
CLIENT_SECRET = "EK-knowpay-contract-secret"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
TIME_SCALE = 0.0002  # PayPal's 1-minute first retry becomes 12 ms
PRICE_MINOR = 8888  # USD 88.88
SHOP_RETURN = "https://shop.example/paid"
ACK_OK = {"status_code": 200, "body": '{"received":true}'}
ACK_REFUSED = {"status_code": 400, "body": '{"received":false}'}


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@dataclass
class Sandbox:
    url: str
    keys: dict[str, Any]
    http: httpx.Client
    """Talks to /paypal/… on the simulator."""

    def fault(self, kind: str, out_trade_no: str | None = None, **spec: Any) -> None:
        body = {"kind": kind, "out_trade_no": out_trade_no, **spec}
        response = self.http.post("/_faults", json=body)
        assert response.status_code == 201, response.text

    def deliveries(self, out_trade_no: str, event_type: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.get(
            "/_notifications", params={"out_trade_no": out_trade_no}
        ).json()
        return [d for d in found if event_type is None or d["event_type"] == event_type]

    def answered(self, out_trade_no: str, event_type: str) -> list[dict[str, Any]]:
        """knowpay's answers to the first try of the event's delivery, once it has them."""
        wait_for(lambda: bool(self.deliveries(out_trade_no, event_type)))
        wait_for(lambda: bool(self.deliveries(out_trade_no, event_type)[0]["attempts"]))
        answers: list[dict[str, Any]] = self.deliveries(out_trade_no, event_type)[0]["attempts"][0][
            "answers"
        ]
        return answers

    def order(self, order_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(f"/_orders/{order_id}").json()
        return found

    def approve(self, order_id: str) -> None:
        response = self.http.post(f"/_orders/{order_id}/approve")
        assert response.status_code == 200, response.text


@dataclass
class World:
    shop: Shop
    knowpay: httpx.Client
    app: FastAPI
    sandbox: Sandbox
    database: Database
    course: dict[str, Any]

    def channel(self) -> PayPalChannel:
        channel = self.app.state.channel_registry.adapter("paypal")
        assert isinstance(channel, PayPalChannel)
        return channel

    def usd_order(self) -> dict[str, Any]:
        return self.shop.order(self.course, currency="USD")

    def pay(self, order: dict[str, Any]) -> dict[str, Any]:
        return self.shop.pay(order, channel="paypal", return_url=SHOP_RETURN)

    def order_status(self, order: dict[str, Any]) -> str:
        return str(self.shop.get(f"/v1/orders/{order['id']}")["status"])

    def payment(self, payment: dict[str, Any]) -> dict[str, Any]:
        return self.shop.get(f"/v1/payments/{payment['id']}")

    def sync(self, payment: dict[str, Any]) -> dict[str, Any]:
        """The active query (as the buyer's return runs it): it captures an approved order."""
        response = self.knowpay.post(
            f"/v1/payments/{payment['id']}/sync", headers=self.shop.app.headers
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def approve_in_browser(self, payment: dict[str, Any]) -> httpx.Response:
        """The buyer opens PayPal's page, clicks Pay Now, and is sent back to knowpay's
        /return/{id}; knowpay's answer to that (a redirect to the shop) is returned."""
        page = httpx.get(payment["action"]["url"], trust_env=False)
        assert page.status_code == 200, page.text
        assert "Pay Now" in page.text
        form = re.search(r'action="([^"]+)"', page.text)
        assert form is not None
        back = httpx.post(
            form.group(1).replace("&amp;", "&"), data={"action": "approve"}, trust_env=False
        )
        assert back.status_code == 303, back.text
        location = back.headers["location"]
        assert location.startswith(f"{self.knowpay.base_url}/return/{payment['id']}?token=")
        assert "PayerID=" in location
        return httpx.get(location, trust_env=False)

    def alerts(self) -> list[str]:
        staff = self.shop.build.staff(Role.SUPPORT)
        data = self.knowpay.get("/v1/admin/alerts", headers=staff.headers).json()["data"]
        return [alert["kind"] for alert in data]

    def refund(self, order: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"order_id": order["id"], "reason": "accidental_purchase", **fields}
        response = self.knowpay.post("/v1/refunds", json=body, headers=self.shop.app.headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def run_jobs(self, ahead: timedelta) -> None:
        """The worker's jobs once, with a clock `ahead` of now (the job's waits are over)."""
        from knowpay.worker.runner import Worker

        clock = FrozenClock(datetime.now(UTC) + ahead)
        settings = self.app.state.settings
        Worker(settings, self.database, clock, self.app.state.channel_registry).run_jobs_once()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    port = free_port()
    config = SandboxConfig(
        public_url=f"http://127.0.0.1:{port}",
        time_scale=TIME_SCALE,
        gateways={
            "paypal": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "webhook_id": WEBHOOK_ID,
                "webhook_url": "http://127.0.0.1:9/notify/paypal",  # each test points it
            }
        },
    )
    with (
        serve_in_thread(create_sandbox_app(config), port=port) as url,
        httpx.Client(base_url=f"{url}/paypal", trust_env=False, timeout=10) as http,
    ):
        yield Sandbox(url, http.get("/_keys").json(), http)


@contextmanager
def _world(
    sandbox: Sandbox, settings: Settings, database: Database, verify_mode: str
) -> Iterator[World]:
    port = free_port()
    paypal = PayPalSettings(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        webhook_id=WEBHOOK_ID,
        base_url=sandbox.keys["base_url"],
        cert_hosts=sandbox.keys["cert_hosts"],
        currencies=["USD"],
        verify_mode=verify_mode,
        timeout_s=2.0,
    )
    live = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "paypal": paypal})
    app = create_app(live, clock=SystemClock(), database=database, run_worker=False)
    pointed = sandbox.http.put(
        f"/_webhook_endpoints/{WEBHOOK_ID}", json={"url": f"{live.public_url}/notify/paypal"}
    )
    assert pointed.status_code == 200, pointed.text
    with (
        serve_in_thread(app, port=port) as url,
        httpx.Client(base_url=url, trust_env=False, timeout=15) as knowpay,
    ):
        shop = Shop(Builders(cast(TestClient, knowpay), database, FrozenClock()))
        course = shop.build.product(
            shop.app, title="Course", prices=[{"amount": PRICE_MINOR, "currency": "USD"}]
        )
        try:
            yield World(shop, knowpay, app, sandbox, database, course)
        finally:
            sandbox.http.post("/_reset")  # no retry of this test's webhooks outlives it


@pytest.fixture
def world(sandbox: Sandbox, settings: Settings, database: Database) -> Iterator[World]:
    with _world(sandbox, settings, database, "postback") as world:
        yield world


@pytest.fixture
def offline_world(sandbox: Sandbox, settings: Settings, database: Database) -> Iterator[World]:
    with _world(sandbox, settings, database, "offline") as world:
        yield world


def _paid_once(world: World, order: dict[str, Any], payment: dict[str, Any]) -> None:
    """The order is paid by this payment, once: one capture entry, one order.paid, the
    entitlement granted, the ledger balanced, and one capture at PayPal."""
    wait_for(lambda: world.order_status(order) == "paid")
    paid = world.payment(payment)
    assert paid["status"] == "succeeded"
    at_paypal = world.sandbox.order(paid["gateway_trade_no"])
    assert at_paypal["status"] == "COMPLETED"
    [capture] = at_paypal["purchase_units"][0]["payments"]["captures"]
    assert capture["status"] == "COMPLETED"
    assert capture["amount"] == {"currency_code": "USD", "value": "88.88"}
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert len(books.events(world.database, "order.paid")) == 1
    [entitlement] = books.entitlements(world.database, world.shop.buyer.id)
    assert entitlement.payment_id == payment["id"]
    assert books.violations(world.database) == []


# Paying ------------------------------------------------------------------------------------


def test_a_usd_order_paid_at_paypal_through_the_buyers_return(world: World) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    assert payment["status"] == "pending"
    assert payment["action"]["type"] == "redirect"
    assert payment["action"]["url"].startswith(f"{world.sandbox.url}/paypal/checkoutnow?token=")
    assert payment["gateway_trade_no"] in payment["action"]["url"]
    created = world.sandbox.order(payment["gateway_trade_no"])
    assert created["purchase_units"][0]["invoice_id"] == payment["id"]
    assert created["purchase_units"][0]["amount"] == {"currency_code": "USD", "value": "88.88"}
    assert created["status"] == "CREATED"

    back = world.approve_in_browser(payment)
    assert (back.status_code, back.headers["location"]) == (303, SHOP_RETURN)
    # The return captured: paid before any webhook needed to arrive.
    assert world.payment(payment)["status"] == "succeeded"
    _paid_once(world, order, payment)
    # Both webhooks (the approval, the capture) were accepted and changed nothing more.
    assert world.sandbox.answered(payment["id"], "CHECKOUT.ORDER.APPROVED") == [ACK_OK]
    assert world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.COMPLETED") == [ACK_OK]
    wait_for(lambda: len(books.notifications(world.database)) == 2)
    assert {n.outcome for n in books.notifications(world.database)} == {"processed"}
    _paid_once(world, order, payment)


def test_the_return_before_approval_captures_nothing(world: World) -> None:
    """A buyer who cancels at PayPal comes back to the same knowpay page: nothing is paid."""
    order = world.usd_order()
    payment = world.pay(order)
    page = httpx.get(payment["action"]["url"], trust_env=False)
    form = re.search(r'action="([^"]+)"', page.text)
    assert form is not None
    back = httpx.post(form.group(1).replace("&amp;", "&"), data={"action": "cancel"})
    assert back.status_code == 303
    assert "PayerID" not in back.headers["location"]
    shop = httpx.get(back.headers["location"], trust_env=False)
    assert (shop.status_code, shop.headers["location"]) == (303, SHOP_RETURN)
    assert world.payment(payment)["status"] == "pending"
    assert world.sandbox.order(payment["gateway_trade_no"])["status"] == "CREATED"
    assert world.order_status(order) == "created"


def test_approval_then_the_active_query_captures_and_the_webhooks_are_absorbed(
    world: World,
) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("lost", payment["id"], events=["CHECKOUT.ORDER.APPROVED"])
    world.sandbox.approve(payment["gateway_trade_no"])
    assert world.order_status(order) == "created"  # approved is not paid
    assert world.sync(payment)["status"] == "succeeded"
    assert world.sync(payment)["status"] == "succeeded"  # asked again: no second capture
    _paid_once(world, order, payment)
    assert world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.COMPLETED") == [ACK_OK]
    _paid_once(world, order, payment)


def test_a_buyer_who_never_returns_is_captured_by_the_approval_webhook(world: World) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.approve(payment["gateway_trade_no"])  # approved; the browser is closed
    assert world.sandbox.answered(payment["id"], "CHECKOUT.ORDER.APPROVED") == [ACK_OK]
    _paid_once(world, order, payment)
    assert world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.COMPLETED") == [ACK_OK]


def test_a_buyer_who_never_returns_and_whose_webhooks_are_lost_is_captured_by_the_job(
    world: World,
) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("lost", payment["id"])
    world.sandbox.approve(payment["gateway_trade_no"])
    wait_for(lambda: bool(world.sandbox.deliveries(payment["id"])))
    assert world.order_status(order) == "created"
    world.run_jobs(ahead=timedelta(minutes=2))  # query_silent_payments: asks, captures
    _paid_once(world, order, payment)


def test_a_capture_paypal_holds_pending_pays_when_its_completion_arrives(world: World) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("capture_pending", payment["id"], times=1)
    back = world.approve_in_browser(payment)
    assert back.status_code == 303
    assert world.payment(payment)["status"] == "pending"
    assert world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.PENDING") == [ACK_OK]
    capture = world.sandbox.order(payment["gateway_trade_no"])["purchase_units"][0]["payments"][
        "captures"
    ][0]
    assert capture["status"] == "PENDING"
    assert world.order_status(order) == "created"
    done = world.sandbox.http.post(f"/_captures/{capture['id']}/complete")
    assert done.status_code == 200, done.text
    _paid_once(world, order, payment)


def test_an_instrument_declined_at_capture_fails_the_attempt_and_the_order_stays_payable(
    world: World,
) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("instrument_declined", payment["id"], times=1)
    world.sandbox.fault("lost", payment["id"])
    back = world.approve_in_browser(payment)
    assert (back.status_code, back.headers["location"]) == (303, SHOP_RETURN)
    failed = world.payment(payment)
    assert (failed["status"], failed["failure_code"]) == ("failed", "INSTRUMENT_DECLINED")
    assert world.order_status(order) == "created"
    again = world.pay(order)
    world.approve_in_browser(again)
    _paid_once(world, order, again)


def test_paypal_verified_offline_with_its_certificate(offline_world: World) -> None:
    world = offline_world
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.approve(payment["gateway_trade_no"])
    assert world.sandbox.answered(payment["id"], "CHECKOUT.ORDER.APPROVED") == [ACK_OK]
    _paid_once(world, order, payment)
    assert world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.COMPLETED") == [ACK_OK]


# Webhooks that are not PayPal's word -------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["forged_signature", "wrong_webhook_id", "tampered_body", "foreign_cert_url"]
)
@pytest.mark.parametrize("mode", ["postback", "offline"])
def test_a_webhook_that_is_not_paypals_word_is_rejected_and_changes_nothing(
    sandbox: Sandbox, settings: Settings, database: Database, kind: str, mode: str
) -> None:
    with _world(sandbox, settings, database, mode) as world:
        order = world.usd_order()
        payment = world.pay(order)
        world.sandbox.fault(kind, payment["id"])
        world.sandbox.approve(payment["gateway_trade_no"])
        assert world.sandbox.answered(payment["id"], "CHECKOUT.ORDER.APPROVED") == [ACK_REFUSED]
        # Rejected before anything was believed: PayPal was not even asked to capture.
        assert world.sandbox.order(payment["gateway_trade_no"])["status"] == "APPROVED"
        assert world.order_status(order) == "created"
        assert books.entries(world.database, kind="payment_captured") == []
        assert "notification_rejected" in world.alerts()
        # The order is approved at PayPal all the same: the active query settles it.
        assert world.sync(payment)["status"] == "succeeded"
        assert world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.COMPLETED") == [ACK_REFUSED]
        _paid_once(world, order, payment)


def test_a_webhook_that_cannot_be_verified_now_is_answered_5xx_and_taken_on_a_retry(
    world: World,
) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("lost", payment["id"], events=["PAYMENT.CAPTURE.COMPLETED"])
    world.sandbox.fault("http_5xx", None, operations=["webhooks.verify-signature"], times=3)
    world.sandbox.approve(payment["gateway_trade_no"])
    [first] = world.sandbox.answered(payment["id"], "CHECKOUT.ORDER.APPROVED")
    assert first["status_code"] == 503  # "not now": neither trusted nor refused
    _paid_once(world, order, payment)  # PayPal's next try is verified and captures
    [delivery] = world.sandbox.deliveries(payment["id"], "CHECKOUT.ORDER.APPROVED")
    statuses = [a["answers"][0]["status_code"] for a in delivery["attempts"]]
    assert (statuses[0], statuses[-1]) == (503, 200), statuses


def test_duplicated_webhooks_record_one_capture(world: World) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("duplicate", payment["id"], count=5)
    world.sandbox.approve(payment["gateway_trade_no"])
    approved = world.sandbox.answered(payment["id"], "CHECKOUT.ORDER.APPROVED")
    assert approved == [ACK_OK] * 5
    captured = world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.COMPLETED")
    assert captured == [ACK_OK] * 5
    _paid_once(world, order, payment)
    assert [n.outcome for n in books.notifications(world.database)] == ["processed"] * 2


def test_a_webhook_knowpay_could_not_take_is_retried_on_paypals_schedule(world: World) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("lost", payment["id"], events=["PAYMENT.CAPTURE.COMPLETED"])
    world.sandbox.http.put(
        f"/_webhook_endpoints/{WEBHOOK_ID}", json={"url": f"{world.knowpay.base_url}/nowhere"}
    )
    world.sandbox.approve(payment["gateway_trade_no"])
    wait_for(lambda: len(world.sandbox.deliveries(payment["id"])[0]["attempts"]) >= 3)
    assert world.order_status(order) == "created"
    world.sandbox.http.put(
        f"/_webhook_endpoints/{WEBHOOK_ID}", json={"url": f"{world.knowpay.base_url}/notify/paypal"}
    )
    wait_for(lambda: world.sandbox.deliveries(payment["id"])[0]["delivered"])
    _paid_once(world, order, payment)


# Refunds -----------------------------------------------------------------------------------


def _paid(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    order = world.usd_order()
    payment = world.pay(order)
    world.approve_in_browser(payment)
    _paid_once(world, order, payment)
    return order, payment


def _capture_of(world: World, payment: dict[str, Any]) -> dict[str, Any]:
    order = world.sandbox.order(world.payment(payment)["gateway_trade_no"])
    capture: dict[str, Any] = order["purchase_units"][0]["payments"]["captures"][0]
    return capture


def test_partial_then_full_refund_settled_by_paypals_webhook(world: World) -> None:
    order, payment = _paid(world)
    world.sandbox.fault("refund_pending", payment["id"], times=1)
    partial = world.refund(order, amount=3000)
    assert partial["status"] == "processing", partial
    assert world.sandbox.deliveries(payment["id"], "PAYMENT.CAPTURE.REFUNDED") == []
    [pending] = world.sandbox.http.get("/_refunds", params={"out_trade_no": payment["id"]}).json()
    assert pending["status"] == "PENDING"
    at_paypal = world.sandbox.http.post(f"/_refunds/{pending['id']}/complete")
    assert at_paypal.status_code == 200, at_paypal.text
    assert world.sandbox.answered(payment["id"], "PAYMENT.CAPTURE.REFUNDED") == [ACK_OK]
    wait_for(lambda: world.order_status(order) == "partially_refunded")
    rest = world.refund(order)
    assert (rest["status"], rest["amount"]) == ("succeeded", PRICE_MINOR - 3000)
    assert world.order_status(order) == "refunded"
    assert _capture_of(world, payment)["status"] == "REFUNDED"
    assert books.violations(world.database) == []


def test_a_refund_whose_webhook_is_lost_is_settled_by_the_active_query(world: World) -> None:
    order, payment = _paid(world)
    world.sandbox.fault("refund_pending", payment["id"], times=1)
    world.sandbox.fault("lost", payment["id"], events=["PAYMENT.CAPTURE.REFUNDED"])
    refund = world.refund(order)
    assert refund["status"] == "processing", refund
    [pending] = world.sandbox.http.get("/_refunds", params={"out_trade_no": payment["id"]}).json()
    assert world.sandbox.http.post(f"/_refunds/{pending['id']}/complete").status_code == 200
    wait_for(lambda: bool(world.sandbox.deliveries(payment["id"], "PAYMENT.CAPTURE.REFUNDED")))
    assert world.order_status(order) == "paid"
    world.run_jobs(ahead=timedelta(minutes=5))  # check_processing_refunds asks PayPal
    after = world.knowpay.get(f"/v1/refunds/{refund['id']}", headers=world.shop.app.headers)
    assert after.json()["status"] == "succeeded", after.json()
    assert world.order_status(order) == "refunded"
    assert books.violations(world.database) == []


def test_a_refund_retried_with_its_request_id_is_paypals_replay(world: World) -> None:
    from knowpay.channels.types import ChannelStatus, RefundRequest
    from knowpay.kit.money import Money

    _, payment = _paid(world)
    gateway_trade_no = world.payment(payment)["gateway_trade_no"]
    channel = world.channel()

    def ask(number: str, minor: int) -> Any:
        request = RefundRequest(
            payment["id"],
            number,
            Money(minor, "USD"),
            Money(PRICE_MINOR, "USD"),
            "requested_by_customer",
            "",
            gateway_trade_no,
        )
        return channel.refund(request)

    first, again = ask("rfd_contract_a", 1000), ask("rfd_contract_a", 1000)
    assert first.status is ChannelStatus.SUCCEEDED
    assert again.gateway_refund_no == first.gateway_refund_no  # replayed, not refunded twice
    too_much = ask("rfd_contract_b", PRICE_MINOR)
    assert (too_much.status, too_much.failure_code) == (
        ChannelStatus.FAILED,
        "REFUND_AMOUNT_EXCEEDED",
    )
    assert _capture_of(world, payment)["status"] == "PARTIALLY_REFUNDED"
    result = channel.query_refund(
        payment["id"], "rfd_contract_a", gateway_refund_no=first.gateway_refund_no
    )
    assert result.status is ChannelStatus.SUCCEEDED
    lines = [
        (line.kind, line.amount.amount_minor)
        for line in channel.fetch_bill(datetime.now(UTC).date()).lines
        if line.out_trade_no == payment["id"]
    ]
    assert lines == [("payment", PRICE_MINOR), ("refund", 1000)]


# Closing, currencies, outages ----------------------------------------------------------------


def test_closing_an_approved_order_marks_it_and_nothing_captures_it_afterwards(
    world: World,
) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("lost", payment["id"])
    world.sandbox.approve(payment["gateway_trade_no"])
    closed = world.knowpay.post(f"/v1/orders/{order['id']}/close", headers=world.shop.app.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert world.payment(payment)["status"] == "closed"
    at_paypal = world.sandbox.order(payment["gateway_trade_no"])
    assert at_paypal["status"] == "APPROVED"
    assert at_paypal["purchase_units"][0]["custom_id"] == f"knowpay-closed:{payment['id']}"
    # Asked again (a late return, a sync): PayPal is not asked to capture a closed order.
    assert world.sync(payment)["status"] == "closed"
    assert "payments" not in world.sandbox.order(payment["gateway_trade_no"])["purchase_units"][0]
    assert books.entries(world.database, kind="payment_captured") == []
    assert books.violations(world.database) == []


def test_a_cny_order_cannot_use_paypal_configured_for_usd_only(world: World) -> None:
    order = world.shop.order()  # CNY

    def listed(order: dict[str, Any]) -> list[str]:
        answer = world.knowpay.get(
            f"/v1/orders/{order['id']}/channels", headers=world.shop.app.headers
        )
        assert answer.status_code == 200, answer.text
        return [option["channel"] for option in answer.json()["data"]]

    assert "paypal" not in listed(order)
    assert "paypal" in listed(world.usd_order())
    response = world.knowpay.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "paypal", "return_url": SHOP_RETURN},
        headers=world.shop.app.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "currency_not_supported"


def test_paypal_failing_on_create_is_a_problem_and_nothing_is_half_written(world: World) -> None:
    order = world.usd_order()
    world.sandbox.fault("http_5xx", None, operations=["orders.create"], times=3)
    response = world.knowpay.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "paypal", "return_url": SHOP_RETURN},
        headers=world.shop.app.headers,
    )
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "channel_unavailable"
    attempts = world.shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert [(a["status"], a["gateway_trade_no"]) for a in attempts] == [("failed", None)]
    assert (
        world.sandbox.http.get("/_orders", params={"out_trade_no": attempts[0]["id"]}).json() == []
    )
    assert world.order_status(order) == "created"
    assert books.entries(world.database) == []
    # PayPal is back: the order is still payable.
    payment = world.pay(order)
    world.approve_in_browser(payment)
    _paid_once(world, order, payment)


def test_a_create_that_timed_out_is_sent_again_and_paypal_replays_the_same_order(
    world: World,
) -> None:
    order = world.usd_order()
    # PayPal makes the order, then answers after knowpay stopped waiting (2 s).
    world.sandbox.fault("timeout", None, operations=["orders.create"], times=1, seconds=2.5)
    payment = world.pay(order)
    assert payment["status"] == "pending"
    made = world.sandbox.http.get("/_orders", params={"out_trade_no": payment["id"]}).json()
    assert [o["id"] for o in made] == [payment["gateway_trade_no"]]
    world.approve_in_browser(payment)
    _paid_once(world, order, payment)


def test_a_token_paypal_expired_is_fetched_again_once(world: World) -> None:
    order = world.usd_order()
    payment = world.pay(order)
    world.sandbox.fault("lost", payment["id"])
    world.sandbox.approve(payment["gateway_trade_no"])
    assert world.sandbox.http.post("/_tokens/expire").json()["expired"] >= 1
    assert world.sync(payment)["status"] == "succeeded"
    _paid_once(world, order, payment)
