"""Stripe over real HTTP: knowpay and the Stripe simulator each on a port of its own. The
simulator checks knowpay's secret key, honours its Idempotency-Keys, keeps its own
PaymentIntents, refunds and balance, and sends events signed with the endpoint secret to
knowpay's /notify/stripe (registered per test as the account's webhook endpoint), retrying
non-2xx answers on Stripe's backoff (time-scaled)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any, cast

import httpx
import pytest
import stripe
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from sqlalchemy import update

from knowpay.app import create_app
from knowpay.auth.principals import Role
from knowpay.channels.stripe import StripeChannel
from knowpay.channels.stripe.client import StripeClient
from knowpay.channels.types import ChannelStatus
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import Settings, StripeSettings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.ledger.accounts import PLATFORM_REVENUE, channel_clearing
from knowpay.payments.models import Payment
from knowpay.refunds.models import Refund
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app
from knowpay.worker.runner import Worker
from tests import books
from tests.builders import Builders, Shop
from tests.live import free_port, serve_in_thread

TIME_SCALE = 0.0002  # Stripe's 1-minute first retry becomes 12 ms
RECEIVED = '{"received": true}'
REFUSED = '{"received": false}'
SUCCEEDS, DECLINED = "4242424242424242", "4000000000000002"


@dataclass
class Sandbox:
    url: str
    http: httpx.Client
    """Talks to /stripe/… on the simulator."""

    def keys(self) -> dict[str, str]:
        keys: dict[str, str] = self.http.get("/_keys").json()
        return keys

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        """A GET on the simulated API with the account's secret key."""
        response = self.http.get(
            path, params=params, headers={"Authorization": f"Bearer {self.keys()['secret_key']}"}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def fault(self, kind: str, out_trade_no: str | None = None, **spec: Any) -> None:
        body = {"kind": kind, "out_trade_no": out_trade_no, **spec}
        assert self.http.post("/_faults", json=body).status_code == 201

    def deliveries(self, out_trade_no: str, event_type: str | None = None) -> list[dict[str, Any]]:
        params = {"out_trade_no": out_trade_no, **({"type": event_type} if event_type else {})}
        result: list[dict[str, Any]] = self.http.get("/_notifications", params=params).json()
        return result

    def answered(self, out_trade_no: str, event_type: str) -> list[dict[str, Any]]:
        """The answers to the first try of the (first) event of this type for the trade."""
        wait_for(lambda: bool(self.deliveries(out_trade_no, event_type)))
        wait_for(lambda: bool(self.deliveries(out_trade_no, event_type)[0]["attempts"]))
        first = self.deliveries(out_trade_no, event_type)[0]
        answers: list[dict[str, Any]] = first["attempts"][0]["answers"]
        return answers

    def requests(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.http.get("/_requests").json() if r["path"] == path]


@dataclass
class World:
    shop: Shop
    knowpay: httpx.Client
    app: FastAPI
    sandbox: Sandbox
    database: Database
    settings: Settings

    def channel(self, **changes: Any) -> StripeChannel:
        """A bare adapter with this deployment's Stripe settings (and any changes)."""
        settings = self.settings.stripe.model_copy(update=changes)
        return StripeChannel(settings, StripeClient(settings), SystemClock())

    def order(self, amount: int = 1499, currency: str = "USD") -> dict[str, Any]:
        product = self.shop.build.product(
            self.shop.app,
            title=f"Course in {currency}",
            prices=[{"amount": amount, "currency": currency}],
        )
        return self.shop.order(product, currency=currency)

    def order_status(self, order: dict[str, Any]) -> str:
        return str(self.shop.get(f"/v1/orders/{order['id']}")["status"])

    def payment(self, payment: dict[str, Any]) -> dict[str, Any]:
        return self.shop.get(f"/v1/payments/{payment['id']}")

    def intent(self, payment: dict[str, Any]) -> dict[str, Any]:
        return self.sandbox.api(f"/v1/payment_intents/{payment['gateway_trade_no']}")

    def pay_on_page(self, payment: dict[str, Any], card: str = SUCCEEDS) -> httpx.Response:
        """The payer opens the payment page, types a card number and presses Pay."""
        page = httpx.get(payment["action"]["url"], trust_env=False)
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None, page.text
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        fields = {name: unescape(value) for name, value in fields.items()}
        return httpx.post(
            unescape(action.group(1)), data={**fields, "card_number": card}, trust_env=False
        )

    def pay(self, payment: dict[str, Any], card: str = SUCCEEDS) -> httpx.Response:
        """The payer pays with a card directly (the simulator's JSON stand-in for the page)."""
        return self.sandbox.http.post(
            "/_pay", json={"payment_intent": payment["gateway_trade_no"], "card": card}
        )

    def paid_order(
        self, amount: int = 1499, currency: str = "USD"
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        order = self.order(amount, currency)
        payment = self.shop.pay(order, channel="stripe")
        assert self.pay(payment).status_code == 200
        wait_for(lambda: self.order_status(order) == "paid")
        return order, payment

    def refund(self, order: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"order_id": order["id"], "reason": "accidental_purchase", **fields}
        response = self.knowpay.post("/v1/refunds", json=body, headers=self.shop.app.headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def read_refund(self, refund: dict[str, Any]) -> dict[str, Any]:
        return self.shop.get(f"/v1/refunds/{refund['id']}")

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


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    port = free_port()
    # Until a test points it at its knowpay, the account's endpoint is a closed port.
    config = SandboxConfig(
        public_url=f"http://127.0.0.1:{port}",
        time_scale=TIME_SCALE,
        gateways={"stripe": {"webhook_url": "http://127.0.0.1:9/notify/stripe"}},
    )
    with (
        serve_in_thread(create_sandbox_app(config), port=port) as url,
        httpx.Client(base_url=f"{url}/stripe", trust_env=False, timeout=10) as http,
    ):
        yield Sandbox(url, http)


@pytest.fixture
def world(sandbox: Sandbox, settings: Settings, database: Database) -> Iterator[World]:
    port = free_port()
    keys = sandbox.keys()
    # The account's webhook endpoint is knowpay's /notify/stripe (as set in the dashboard).
    moved = sandbox.http.patch(
        f"/_webhook_endpoints/{keys['webhook_endpoint_id']}",
        json={"url": f"http://127.0.0.1:{port}/notify/stripe"},
    )
    assert moved.status_code == 200, moved.text
    stripe_settings = StripeSettings(
        secret_key=keys["secret_key"],
        publishable_key=keys["publishable_key"],
        webhook_secret=keys["webhook_secret"],
        base_url=keys["base_url"],
        payer_page_url=keys["payer_page_url"],
        timeout_s=1.0,
    )
    live = settings.model_copy(
        update={"public_url": f"http://127.0.0.1:{port}", "stripe": stripe_settings}
    )
    app = create_app(live, clock=SystemClock(), database=database, run_worker=False)
    with (
        serve_in_thread(app, port=port) as url,
        httpx.Client(base_url=url, trust_env=False, timeout=15) as knowpay,
    ):
        shop = Shop(Builders(cast(TestClient, knowpay), database, FrozenClock()))
        try:
            yield World(shop, knowpay, app, sandbox, database, live)
        finally:
            sandbox.http.post("/_reset")  # no retry of this test's webhooks outlives it


# Paying --------------------------------------------------------------------------------------


def test_a_usd_order_is_paid_through_the_payer_page_and_the_signed_webhook(world: World) -> None:
    order = world.order(1499, "USD")
    payment = world.shop.pay(order, channel="stripe")
    assert payment["status"] == "pending"
    intent_id = payment["gateway_trade_no"]
    assert intent_id.startswith("pi_")
    assert payment["action"]["type"] == "client_secret"
    assert payment["action"]["client_secret"].startswith(f"{intent_id}_secret_")
    intent = world.intent(payment)
    assert (intent["amount"], intent["currency"], intent["metadata"]) == (
        1499,
        "usd",
        {"out_trade_no": payment["id"]},
    )
    [create] = world.sandbox.requests("/v1/payment_intents")
    assert create["idempotency_key"] == f"knowpay:create:{payment['id']}"
    assert create["stripe_version"] == world.settings.stripe.api_version

    paid = world.pay_on_page(payment)
    # Back to the cashier through knowpay's return (found by a browser audit: the payer page
    # had no return_url, and the payer was left on "Payment succeeded").
    assert paid.status_code == 303, paid.text
    back = f"{world.settings.public_url}/return/{payment['id']}?payment_intent={intent_id}"
    assert paid.headers["location"].startswith(back)
    wait_for(lambda: world.order_status(order) == "paid")
    after = world.payment(payment)
    assert (after["status"], after["gateway_trade_no"]) == ("succeeded", intent_id)
    [entitlement] = books.entitlements(world.database, world.shop.buyer.id)
    assert entitlement.payment_id == payment["id"]
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert books.account_balance(world.database, channel_clearing("stripe"), "USD") == 1499
    assert books.violations(world.database) == []
    assert world.sandbox.answered(payment["id"], "payment_intent.succeeded") == [
        {"status_code": 200, "body": RECEIVED}
    ]
    # The events knowpay has no use for (created, charge.succeeded) get a 2xx too, or Stripe
    # would retry them for days.
    wait_for(lambda: all(d["delivered"] for d in world.sandbox.deliveries(payment["id"])))
    types = {d["type"] for d in world.sandbox.deliveries(payment["id"])}
    assert types == {"payment_intent.created", "charge.succeeded", "payment_intent.succeeded"}
    assert {n.outcome for n in books.notifications(world.database)} == {"processed"}
    assert world.alerts() == []


def test_the_payers_return_shows_nobody_the_client_secret(world: World) -> None:
    """/return/{id} is open to any browser (the gateway sends the payer there, signed in or
    not): it redirects, to the cashier page when the app gave no return_url."""
    order = world.order(1499, "USD")
    payment = world.shop.pay(order, channel="stripe")
    assert payment["action"]["client_secret"]
    with httpx.Client(base_url=world.knowpay.base_url, trust_env=False) as stranger:
        back = stranger.get(f"/return/{payment['id']}", follow_redirects=False)
    assert back.status_code == 303
    assert back.headers["location"] == f"{world.settings.public_url}/pay/{order['id']}"
    assert payment["action"]["client_secret"] not in back.text
    assert payment["id"] not in back.text


def test_a_jpy_order_is_charged_in_whole_yen_and_booked_in_yen(world: World) -> None:
    order = world.order(1500, "JPY")
    payment = world.shop.pay(order, channel="stripe")
    intent = world.intent(payment)
    assert (intent["amount"], intent["currency"]) == (1500, "jpy")  # zero-decimal: as is
    assert world.pay(payment).status_code == 200
    wait_for(lambda: world.order_status(order) == "paid")
    assert books.account_balance(world.database, channel_clearing("stripe"), "JPY") == 1500
    assert books.account_balance(world.database, PLATFORM_REVENUE, "JPY") == -1500
    assert books.violations(world.database) == []


def test_a_declined_card_leaves_the_payment_payable_and_another_card_pays(world: World) -> None:
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    declined = world.pay_on_page(payment, card=DECLINED)
    assert declined.status_code == 402
    assert "Your card was declined." in declined.text
    assert world.sandbox.answered(payment["id"], "payment_intent.payment_failed") == [
        {"status_code": 200, "body": RECEIVED}
    ]
    # Stripe puts the PaymentIntent back to requires_payment_method: still payable, so pending.
    assert world.payment(payment)["status"] == "pending"
    synced = world.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=world.shop.app.headers
    )
    assert synced.json()["status"] == "pending"
    assert world.pay_on_page(payment).status_code == 303  # back through knowpay's return
    wait_for(lambda: world.order_status(order) == "paid")
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert books.violations(world.database) == []


def test_ten_concurrent_duplicates_of_the_webhook_record_one_capture(world: World) -> None:
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    world.sandbox.fault("duplicate", payment["id"], count=10, types=["payment_intent.succeeded"])
    world.pay(payment)
    answers = world.sandbox.answered(payment["id"], "payment_intent.succeeded")
    assert len(answers) == 10
    assert {(a["status_code"], a["body"]) for a in answers} == {(200, RECEIVED)}
    assert world.order_status(order) == "paid"
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert len(books.events(world.database, "order.paid")) == 1
    event_id = world.sandbox.deliveries(payment["id"], "payment_intent.succeeded")[0]["event_id"]
    stored = [n for n in books.notifications(world.database) if n.external_id == event_id]
    assert [n.outcome for n in stored] == ["processed"]  # one row per event id
    assert books.violations(world.database) == []


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("forged_signature", {}),
        ("stale_signature", {"seconds": 600}),
        ("tampered_amount", {"amount": 1}),
    ],
    ids=["forged-signature", "replayed-after-tolerance", "signed-but-wrong-amount"],
)
def test_a_webhook_that_is_not_stripes_word_is_refused_and_changes_nothing(
    world: World, kind: str, spec: dict[str, Any]
) -> None:
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    world.sandbox.fault(kind, payment["id"], types=["payment_intent.succeeded"], **spec)
    world.pay(payment)
    assert world.sandbox.answered(payment["id"], "payment_intent.succeeded") == [
        {"status_code": 400, "body": REFUSED}
    ]
    assert world.order_status(order) == "created"
    assert world.payment(payment)["status"] == "pending"
    assert books.entries(world.database, kind="payment_captured") == []
    assert books.entitlements(world.database, world.shop.buyer.id) == []
    assert "notification_rejected" in world.alerts()
    # The PaymentIntent did succeed at Stripe: an active query settles it from Stripe's answer.
    synced = world.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=world.shop.app.headers
    )
    assert synced.json()["status"] == "succeeded"
    assert books.violations(world.database) == []


def test_a_second_payment_intent_carrying_our_number_does_not_pay_the_order(
    world: World,
) -> None:
    """Someone with the account's key opens another PaymentIntent with our out_trade_no in
    its metadata and pays it: Stripe's signed event is genuine, but it is not the attempt's
    PaymentIntent, so it is refused and the order stays payable by its own."""
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    other = world.sandbox.http.post(
        "/v1/payment_intents",
        data={"amount": "1499", "currency": "usd", "metadata[out_trade_no]": payment["id"]},
        headers={"Authorization": f"Bearer {world.sandbox.keys()['secret_key']}"},
    ).json()
    assert other["id"] != payment["gateway_trade_no"]
    assert (
        world.sandbox.http.post(
            "/_pay", json={"payment_intent": other["id"], "card": SUCCEEDS}
        ).status_code
        == 200
    )
    assert world.sandbox.answered(payment["id"], "payment_intent.succeeded") == [
        {"status_code": 400, "body": REFUSED}
    ]
    assert world.order_status(order) == "created"
    assert books.entries(world.database, kind="payment_captured") == []
    assert world.alerts() == ["notification_rejected"]
    assert world.pay(payment).status_code == 200
    wait_for(lambda: world.order_status(order) == "paid")
    assert books.violations(world.database) == []


def test_a_lost_payment_webhook_is_recovered_by_active_query(world: World) -> None:
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    world.sandbox.fault("lost", payment["id"], types=["payment_intent.succeeded"])
    world.pay(payment)
    wait_for(lambda: bool(world.sandbox.deliveries(payment["id"], "payment_intent.succeeded")))
    assert world.sandbox.deliveries(payment["id"], "payment_intent.succeeded")[0]["lost"] is True
    assert world.order_status(order) == "created"
    synced = world.knowpay.post(
        f"/v1/payments/{payment['id']}/sync", headers=world.shop.app.headers
    )
    assert synced.status_code == 200, synced.text
    assert synced.json()["status"] == "succeeded"
    assert world.order_status(order) == "paid"
    assert len(books.entries(world.database, kind="payment_captured")) == 1
    assert books.violations(world.database) == []


def test_a_webhook_signed_with_a_rolled_secret_and_the_old_one_is_still_accepted(
    world: World,
) -> None:
    endpoint_id = world.sandbox.keys()["webhook_endpoint_id"]
    rolled = world.sandbox.http.post(f"/_webhook_endpoints/{endpoint_id}/roll", json={})
    assert len(rolled.json()["secrets"]) == 2  # Stripe signs with both while the old expires
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    world.pay(payment)
    assert world.sandbox.answered(payment["id"], "payment_intent.succeeded") == [
        {"status_code": 200, "body": RECEIVED}
    ]
    wait_for(lambda: world.order_status(order) == "paid")


# Gateway trouble -----------------------------------------------------------------------------


def test_a_5xx_on_create_is_a_503_and_leaves_nothing_half_written(world: World) -> None:
    world.sandbox.fault("http_5xx", None, status=503, operations=["create_payment_intent"])
    order = world.order()
    response = world.knowpay.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "stripe"},
        headers=world.shop.app.headers,
    )
    assert (response.status_code, response.json()["code"]) == (503, "channel_unavailable")
    tries = world.sandbox.requests("/v1/payment_intents")
    assert len(tries) == 3  # retried, every time with the same key
    assert len({t["idempotency_key"] for t in tries}) == 1
    assert world.order_status(order) == "created"
    [attempt] = world.shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert (attempt["status"], attempt["failure_code"]) == ("failed", "channel_unavailable")
    found = world.sandbox.api(
        "/v1/payment_intents/search", query=f"metadata['out_trade_no']:'{attempt['id']}'"
    )
    assert found["data"] == []
    assert books.entries(world.database) == []
    assert books.violations(world.database) == []
    world.sandbox.http.delete("/_faults")  # Stripe is back: the order can still be paid
    payment = world.shop.pay(order, channel="stripe")
    world.pay(payment)
    wait_for(lambda: world.order_status(order) == "paid")


def test_a_create_whose_answer_timed_out_is_retried_with_its_key_and_charged_once(
    world: World,
) -> None:
    world.sandbox.fault("timeout", None, times=1, seconds=1.5, operations=["create_payment_intent"])
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    assert payment["status"] == "pending"
    first, second = world.sandbox.requests("/v1/payment_intents")
    assert first["idempotency_key"] == second["idempotency_key"]
    assert second["replayed"] is True  # Stripe answered the repeat with the first answer
    found = world.sandbox.api(
        "/v1/payment_intents/search", query=f"metadata['out_trade_no']:'{payment['id']}'"
    )
    assert [intent["id"] for intent in found["data"]] == [payment["gateway_trade_no"]]


def test_closing_an_order_cancels_its_payment_intent(world: World) -> None:
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    closed = world.knowpay.post(f"/v1/orders/{order['id']}/close", headers=world.shop.app.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert world.payment(payment)["status"] == "closed"
    intent = world.intent(payment)
    assert (intent["status"], intent["cancellation_reason"]) == ("canceled", "abandoned")
    assert world.sandbox.answered(payment["id"], "payment_intent.canceled") == [
        {"status_code": 200, "body": RECEIVED}
    ]
    page = httpx.get(payment["action"]["url"], trust_env=False)
    assert "canceled" in page.text  # the payer can no longer pay it


def test_a_payment_intent_canceled_at_stripe_closes_the_attempt_by_its_webhook(
    world: World,
) -> None:
    """Canceled from elsewhere (the dashboard, the platform's own Stripe call): the signed
    `payment_intent.canceled` closes the attempt at once, and the order stays payable.
    Found by an independent Stripe implementation: the webhook was acknowledged and changed
    nothing, so the attempt stayed pending until the active query."""
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    canceled = world.sandbox.http.post(
        f"/v1/payment_intents/{payment['gateway_trade_no']}/cancel",
        data={"cancellation_reason": "requested_by_customer"},
        headers={"Authorization": f"Bearer {world.sandbox.keys()['secret_key']}"},
    )
    assert canceled.status_code == 200, canceled.text
    assert world.sandbox.answered(payment["id"], "payment_intent.canceled") == [
        {"status_code": 200, "body": RECEIVED}
    ]
    assert world.payment(payment)["status"] == "closed"
    assert world.order_status(order) == "created"
    again = world.shop.pay(order, channel="stripe")
    assert again["status"] == "pending"


def test_an_order_whose_payment_intent_stripe_does_not_have_still_closes(world: World) -> None:
    """The PaymentIntent knowpay recorded is not on this Stripe account (keys changed to
    another account, or a simulator that restarted): Stripe answers 404 resource_missing,
    and the close used to be a 502 every time, so the order could never close."""
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    with world.database.session_scope() as session:
        session.execute(
            update(Payment).where(Payment.id == payment["id"]).values(gateway_trade_no="pi_gone")
        )
    closed = world.knowpay.post(f"/v1/orders/{order['id']}/close", headers=world.shop.app.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert world.payment(payment)["status"] == "closed"
    assert books.violations(world.database) == []


def test_closing_a_payment_intent_paid_meanwhile_reports_it_paid(world: World) -> None:
    order = world.order()
    payment = world.shop.pay(order, channel="stripe")
    world.sandbox.fault("lost", payment["id"])
    world.pay(payment)
    result = world.channel().close_payment(
        payment["id"], gateway_trade_no=payment["gateway_trade_no"]
    )
    assert result.status is ChannelStatus.SUCCEEDED
    assert result.amount == Money(1499, "USD")


# Refunds -------------------------------------------------------------------------------------


def test_partial_then_full_refund_complete_through_refund_webhooks(world: World) -> None:
    order, payment = world.paid_order(1499, "USD")
    # Stripe answers `pending`; the refund.updated webhook says when the money is back. Two
    # seconds, so that on a loaded machine the webhook cannot settle a refund before the
    # request that made it has answered (it answered `succeeded` then, rightly).
    world.sandbox.fault("slow_refund", payment["id"], seconds=2)
    partial = world.refund(order, amount=500)
    assert partial["status"] == "processing", partial
    wait_for(lambda: world.read_refund(partial)["status"] == "succeeded")
    assert world.order_status(order) == "partially_refunded"
    rest = world.refund(order)
    assert (rest["status"], rest["amount"]) == ("processing", 999)
    wait_for(lambda: world.read_refund(rest)["status"] == "succeeded")
    assert world.order_status(order) == "refunded"
    refunds = world.sandbox.api("/v1/refunds", payment_intent=payment["gateway_trade_no"])["data"]
    assert sorted((r["amount"], r["status"]) for r in refunds) == [
        (500, "succeeded"),
        (999, "succeeded"),
    ]
    assert {r["metadata"]["out_trade_no"] for r in refunds} == {payment["id"]}
    # knowpay commits before it answers: the simulator logs the answer a moment later.
    wait_for(
        lambda: all(
            d["delivered"] for d in world.sandbox.deliveries(payment["id"], "refund.updated")
        )
    )
    updates = world.sandbox.deliveries(payment["id"], "refund.updated")
    assert [d["attempts"][0]["answers"] for d in updates] == [
        [{"status_code": 200, "body": RECEIVED}]
    ] * 2
    assert world.alerts() == []  # refund.created came after the refund was on record
    assert books.violations(world.database) == []


def test_an_immediate_refund_succeeds_from_stripes_answer(world: World) -> None:
    order, payment = world.paid_order(1500, "JPY")
    refund = world.refund(order, amount=600)
    assert refund["status"] == "succeeded", refund
    [sent] = world.sandbox.requests("/v1/refunds")
    assert sent["idempotency_key"].startswith("knowpay:refund:")
    [at_stripe] = world.sandbox.api("/v1/refunds", payment_intent=payment["gateway_trade_no"])[
        "data"
    ]
    assert (at_stripe["amount"], at_stripe["currency"], at_stripe["reason"]) == (
        600,
        "jpy",
        "requested_by_customer",
    )
    assert world.order_status(order) == "partially_refunded"
    assert books.violations(world.database) == []


def test_a_refund_whose_webhook_is_lost_completes_by_active_query(world: World) -> None:
    order, payment = world.paid_order()
    world.sandbox.fault("slow_refund", payment["id"], seconds=0.2)
    world.sandbox.fault("lost", payment["id"], types=["refund.updated", "refund.created"])
    refund = world.refund(order)
    assert refund["status"] == "processing"
    wait_for(
        lambda: (
            world.sandbox.api("/v1/refunds", payment_intent=payment["gateway_trade_no"])["data"][0][
                "status"
            ]
            == "succeeded"
        )
    )
    assert world.read_refund(refund)["status"] == "processing"  # nobody told knowpay
    later = FrozenClock(datetime.now(UTC) + timedelta(hours=1))
    registry = world.app.state.channel_registry
    Worker(world.settings, world.database, later, registry).run_jobs_once()
    assert world.read_refund(refund)["status"] == "succeeded"
    assert world.order_status(order) == "refunded"
    assert books.violations(world.database) == []


def _gateway_refund_no(database: Database, refund_id: str) -> str | None:
    with database.session_scope(read_only=True) as session:
        refund = session.get(Refund, refund_id)
        assert refund is not None
        return refund.gateway_refund_no


def test_another_refund_carrying_our_refund_number_does_not_settle_ours(world: World) -> None:
    """Someone with the account's key makes a second refund at Stripe with our refund's
    number in its metadata. Stripe's signed refund.created for it is genuine, but it is not
    the refund knowpay made: Stripe is thanked (or it would retry for days), staff are told,
    and the refund keeps its own id and status; the worker's query asks Stripe about that one,
    still pending (F2, refund half)."""
    order, payment = world.paid_order(1499, "USD")
    world.sandbox.fault("slow_refund", payment["id"], seconds=30, times=1)  # ours only
    ours = world.refund(order, amount=500)
    assert ours["status"] == "processing", ours
    recorded = _gateway_refund_no(world.database, ours["id"])
    assert recorded is not None
    assert recorded.startswith("re_")
    other = world.sandbox.http.post(
        "/v1/refunds",
        data={
            "payment_intent": payment["gateway_trade_no"],
            "amount": "500",
            "metadata[out_trade_no]": payment["id"],
            "metadata[out_refund_no]": ours["id"],
        },
        headers={"Authorization": f"Bearer {world.sandbox.keys()['secret_key']}"},
    ).json()
    assert other["status"] == "succeeded", other
    assert other["id"] != recorded

    def answers_to_the_other() -> list[dict[str, Any]] | None:
        for delivery in world.sandbox.deliveries(payment["id"], "refund.created"):
            if other["id"] in delivery["body"] and delivery["attempts"]:
                answers: list[dict[str, Any]] = delivery["attempts"][0]["answers"]
                return answers
        return None

    wait_for(lambda: answers_to_the_other() is not None)
    assert answers_to_the_other() == [{"status_code": 200, "body": RECEIVED}]
    assert world.read_refund(ours)["status"] == "processing"
    assert _gateway_refund_no(world.database, ours["id"]) == recorded
    assert world.order_status(order) == "paid"
    assert books.entries(world.database, kind="refund_succeeded") == []
    assert world.alerts() == ["gateway_refund_mismatch"]
    later = FrozenClock(datetime.now(UTC) + timedelta(hours=1))
    Worker(world.settings, world.database, later, world.app.state.channel_registry).run_jobs_once()
    assert world.read_refund(ours)["status"] == "processing"  # Stripe: ours is still pending
    assert _gateway_refund_no(world.database, ours["id"]) == recorded
    assert world.alerts() == ["gateway_refund_mismatch"]
    assert books.violations(world.database) == []


def test_the_days_bill_lists_the_payment_and_the_refund(world: World) -> None:
    order, payment = world.paid_order(1500, "JPY")
    world.refund(order, amount=400)
    bill = world.channel().fetch_bill(datetime.now(UTC).date())
    lines = [(line.kind, line.amount.amount_minor, line.amount.currency, line.gateway_trade_no)
             for line in bill.lines if line.out_trade_no == payment["id"]]  # fmt: skip
    intent_id = payment["gateway_trade_no"]
    assert lines == [("payment", 1500, "JPY", intent_id), ("refund", 400, "JPY", intent_id)]


# Cross-checks with the official stripe-python ------------------------------------------------


def test_the_official_library_verifies_the_simulators_webhooks(world: World) -> None:
    """An endpoint of our own catches a webhook; stripe.Webhook.construct_event accepts it."""
    caught: list[tuple[bytes, str]] = []
    done = threading.Event()
    catcher = FastAPI()

    @catcher.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @catcher.post("/hook")
    async def hook(request: Request) -> Response:
        caught.append((await request.body(), request.headers["stripe-signature"]))
        done.set()
        return Response(status_code=204)

    with serve_in_thread(catcher) as url:
        endpoint = world.sandbox.http.post(
            "/_webhook_endpoints",
            json={"url": f"{url}/hook", "enabled_events": ["payment_intent.succeeded"]},
        ).json()
        world.sandbox.http.post(f"/_webhook_endpoints/{endpoint['id']}/roll", json={})
        secrets = world.sandbox.http.get("/_webhook_endpoints").json()
        [both] = [e["secrets"] for e in secrets if e["id"] == endpoint["id"]]
        order = world.order()
        payment = world.shop.pay(order, channel="stripe")
        world.pay(payment)
        assert done.wait(10)
    body, signature = caught[0]
    assert signature.count("v1=") == 2
    for secret in both:  # either secret verifies it
        event = stripe.Webhook.construct_event(body, signature, secret)
        assert event.type == "payment_intent.succeeded"
        assert event.data.object.metadata["out_trade_no"] == payment["id"]
    assert json.loads(body)["data"]["object"]["amount_received"] == 1499
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", signature, both[0])


def test_the_official_library_talks_to_the_simulator(sandbox: Sandbox) -> None:
    """stripe-python pointed at the simulator: its requests pass, its objects parse."""
    keys = sandbox.keys()
    client = stripe.StripeClient(
        keys["secret_key"], base_addresses={"api": keys["base_url"]}, max_network_retries=0
    )
    intent = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "eur", "metadata": {"out_trade_no": "sdk_1"}}
    )
    assert (intent.status, intent.amount) == ("requires_payment_method", 2000)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": "pm_card_chargeDeclined"}
        )
    assert declined.value.code == "card_declined"
    paid = client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert (paid.status, paid.amount_received) == ("succeeded", 2000)
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})
    assert refund.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.cancel(intent.id)
    assert refused.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as too_small:
        client.v1.payment_intents.create(params={"amount": 10, "currency": "usd"})
    assert too_small.value.code == "amount_too_small"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient(
            "sk_test_wrong", base_addresses={"api": keys["base_url"]}, max_network_retries=0
        ).v1.payment_intents.retrieve(intent.id)
