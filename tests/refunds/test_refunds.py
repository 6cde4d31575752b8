"""Refunds through the test channel: policy, approval, the timeline, ledger stages,
entitlements, failures, retries, manual resolution and duplicate payments."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.alerts.models import Alert
from knowpay.auth.principals import Role
from knowpay.channels.errors import ChannelDeclined, ChannelUnavailable
from knowpay.channels.types import ChannelStatus, RefundRequest, RefundResult
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import RefundSettings, Settings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.ledger.accounts import PLATFORM_REVENUE, REFUNDS_IN_FLIGHT, channel_clearing
from knowpay.payments import service as payments_service
from knowpay.refunds import service as refunds_service
from knowpay.refunds.service import SENT_BY_THE_REQUEST_FOR
from knowpay.worker.runner import Worker
from tests import books
from tests.builders import Builders, Caller, Shop
from tests.statements import statements_sent


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


@pytest.fixture
def finance(build: Builders) -> Caller:
    return build.staff(Role.FINANCE)


@pytest.fixture
def worker(app: FastAPI, settings: Settings, database: Database, clock: FrozenClock) -> Worker:
    return Worker(settings, database, clock, app.state.channel_registry)


def _paid_order(shop: Shop, **order: Any) -> dict[str, Any]:
    placed = shop.order(**order)
    shop.confirm(shop.pay(placed))
    return placed


def _refund(shop: Shop, caller: Caller, order: dict[str, Any], **fields: Any) -> Any:
    body = {"order_id": order["id"], "reason": "accidental_purchase", **fields}
    return shop.client.post("/v1/refunds", json=body, headers=shop.build.relogin(caller).headers)


def _gateway_refunds_raise(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> Callable[[], None]:
    """The test gateway's refund call raises `error` until the returned function is called."""
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    original = channel.refund

    def failing(_request: object) -> object:
        raise error

    monkeypatch.setattr(channel, "refund", failing)
    return lambda: monkeypatch.setattr(channel, "refund", original)


def _as(shop: Shop, caller: Caller) -> dict[str, str]:
    return shop.build.relogin(caller).headers


def test_an_early_full_refund_goes_through_at_once_and_revokes_access(
    shop: Shop, database: Database
) -> None:
    order = _paid_order(shop)
    response = _refund(shop, shop.buyer, order)
    assert response.status_code == 201, response.text
    refund = response.json()
    assert refund["status"] == "succeeded"
    assert refund["amount"] == 9900
    assert [step["step"] for step in refund["timeline"]] == [
        "requested",
        "approved",
        "sent_to_gateway",
        "money_returned",
    ]
    assert refund["timeline"][0]["actor"] == f"buyer:{shop.buyer.id}"
    assert refund["timeline"][1]["actor"] == "system"
    after = shop.get(f"/v1/orders/{order['id']}")
    assert after["status"] == "refunded"
    assert after["amount_refunded"] == 9900
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert entitlement.revoked_at is not None
    events = books.events(database, stream_key=order["id"])
    assert [e["type"] for e in events][-3:] == [
        "refund.created",
        "refund.succeeded",
        "entitlement.revoked",
    ]
    # Approved in the same request: the event says so, as the answer to the request did.
    assert events[-3]["data"]["object"]["status"] == "processing"
    assert books.account_balance(database, PLATFORM_REVENUE) == 0
    assert books.account_balance(database, REFUNDS_IN_FLIGHT) == 0
    assert books.account_balance(database, channel_clearing("test")) == 0
    assert books.violations(database) == []


def test_buying_a_refunded_course_again_restores_access_and_a_second_refund_revokes_it(
    shop: Shop, database: Database, clock: FrozenClock
) -> None:
    """Found by a webhook audit: a lifetime course paid again after a full refund kept the old
    `revoked_at`, so the buyer paid and could not open it, and the next refund revoked nothing."""
    first = _paid_order(shop)
    assert _refund(shop, shop.buyer, first).json()["status"] == "succeeded"
    clock.advance(timedelta(days=1))
    again = _paid_order(shop)
    [restored] = books.entitlements(database, shop.buyer.id)
    assert restored.revoked_at is None
    assert (restored.valid_from, restored.valid_until) == (clock.now(), None)
    listed = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    assert [(e["revoked_at"], e["payment_id"]) for e in listed] == [(None, restored.payment_id)]
    assert _refund(shop, shop.buyer, again).json()["status"] == "succeeded"
    [revoked] = books.entitlements(database, shop.buyer.id)
    assert revoked.revoked_at is not None
    revocations = books.events(database, "entitlement.revoked")
    assert len(revocations) == 2
    assert books.violations(database) == []


def test_partial_refunds_until_the_captured_amount_is_used_up(
    shop: Shop, database: Database
) -> None:
    order = _paid_order(shop)
    assert _refund(shop, shop.app, order, amount=3000).json()["status"] == "succeeded"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "partially_refunded"
    too_much = _refund(shop, shop.app, order, amount=7000)
    assert too_much.status_code == 422
    assert too_much.json()["code"] == "refund_exceeds_captured"
    assert too_much.json()["refundable"] == 6900
    rest = _refund(shop, shop.app, order).json()  # no amount: everything left
    assert rest["amount"] == 6900
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "refunded"
    assert _refund(shop, shop.app, order).json()["code"] == "order_not_paid"
    assert books.violations(database) == []
    # A partial refund keeps the content (configurable), the full one revoked it.
    assert books.entitlements(database, shop.buyer.id)[0].revoked_at is not None


def test_outside_the_window_a_refund_waits_for_finance_who_approves(
    shop: Shop, finance: Caller, database: Database, clock: FrozenClock
) -> None:
    order = _paid_order(shop)
    clock.advance(timedelta(days=8))
    waiting = _refund(
        shop, shop.buyer, order, reason="not_as_described", reason_text="Audio is broken"
    ).json()
    assert waiting["status"] == "pending_approval"
    # Waiting refunds hold the amount: nothing more can be asked meanwhile.
    assert _refund(shop, shop.app, order, amount=1).json()["code"] == "refund_exceeds_captured"
    buyer_try = shop.client.post(
        f"/v1/refunds/{waiting['id']}/approve", headers=_as(shop, shop.buyer)
    )
    assert buyer_try.status_code == 403
    app_try = shop.client.post(f"/v1/refunds/{waiting['id']}/approve", headers=shop.app.headers)
    assert app_try.status_code == 403
    approved = shop.client.post(
        f"/v1/refunds/{waiting['id']}/approve",
        json={"note": "checked the logs"},
        headers=_as(shop, finance),
    ).json()
    assert approved["status"] == "succeeded"
    approval = next(step for step in approved["timeline"] if step["step"] == "approved")
    assert approval["actor"] == f"finance:{finance.id}"
    assert approval["note"] == "checked the logs"
    assert books.violations(database) == []


def test_a_large_refund_of_used_content_waits_even_inside_the_window(
    shop: Shop, build: Builders, database: Database, client: TestClient
) -> None:
    expensive = build.product(shop.app, prices=[{"amount": 50000, "currency": "CNY"}])
    order = _paid_order(shop, items=[{"product_id": expensive["id"]}])
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert (
        client.post(
            f"/v1/entitlements/{entitlement.id}/access", headers=shop.app.headers
        ).status_code
        == 200
    )
    assert _refund(shop, shop.buyer, order).json()["status"] == "pending_approval"


@pytest.mark.parametrize(("amount", "status"), [(20000, "succeeded"), (20001, "pending_approval")])
def test_used_content_is_refunded_automatically_up_to_the_small_amount_exactly(
    shop: Shop, build: Builders, database: Database, client: TestClient, amount: int, status: str
) -> None:
    """`refunds.auto_approve_max_minor` (20000) is the largest amount refunded without finance
    once the content was opened: that amount itself still is, one fen more waits."""
    product = build.product(shop.app, prices=[{"amount": amount, "currency": "CNY"}])
    order = _paid_order(shop, items=[{"product_id": product["id"]}])
    [entitlement] = books.entitlements(database, shop.buyer.id)
    opened = client.post(f"/v1/entitlements/{entitlement.id}/access", headers=shop.app.headers)
    assert opened.status_code == 200
    assert _refund(shop, shop.buyer, order).json()["status"] == status


def test_a_large_refund_of_unused_content_is_automatic_inside_the_window(
    shop: Shop, build: Builders
) -> None:
    expensive = build.product(shop.app, prices=[{"amount": 50000, "currency": "CNY"}])
    order = _paid_order(shop, items=[{"product_id": expensive["id"]}])
    assert _refund(shop, shop.buyer, order).json()["status"] == "succeeded"


def test_finance_rejects_and_the_buyer_reads_why(
    shop: Shop, finance: Caller, database: Database, clock: FrozenClock
) -> None:
    order = _paid_order(shop)
    clock.advance(timedelta(days=30))
    waiting = _refund(shop, shop.buyer, order).json()
    rejected = shop.client.post(
        f"/v1/refunds/{waiting['id']}/reject",
        json={"reason": "The course was completed."},
        headers=_as(shop, finance),
    ).json()
    assert rejected["status"] == "rejected"
    seen = shop.client.get(f"/v1/refunds/{waiting['id']}", headers=_as(shop, shop.buyer)).json()
    assert seen["rejection_reason"] == "The course was completed."
    assert seen["timeline"][-1]["step"] == "rejected"
    again = shop.client.post(f"/v1/refunds/{waiting['id']}/approve", headers=_as(shop, finance))
    assert again.status_code == 409
    assert again.json()["code"] == "refund_not_pending"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert "refund.rejected" in [e["type"] for e in books.events(database, stream_key=order["id"])]


def test_a_refund_the_gateway_refuses_fails_with_the_reason_and_can_be_retried(
    shop: Shop, finance: Caller, database: Database
) -> None:
    from knowpay.channels.testchannel.store import TestGatewayTrade

    order = _paid_order(shop)
    payment_id = shop.get(f"/v1/orders/{order['id']}")["payment_id"]
    store = shop.client.app.state.channel_registry.adapter("test")._store  # type: ignore[attr-defined]
    with store._database.session_scope() as session:
        trade = session.get(TestGatewayTrade, payment_id)
        trade.status = "frozen"  # the gateway will refuse: the trade is not refundable now
    failed = _refund(shop, shop.app, order).json()
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "trade_not_paid"
    assert "refused" in failed["failure_message"]
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert books.violations(database) == []
    with store._database.session_scope() as session:
        session.get(TestGatewayTrade, payment_id).status = "paid"  # the gateway recovers
    retried = shop.client.post(
        f"/v1/refunds/{failed['id']}/retry", headers=_as(shop, finance)
    ).json()
    assert retried["status"] == "succeeded"
    assert [s["step"] for s in retried["timeline"]][-3:] == [
        "retried",
        "sent_to_gateway",
        "money_returned",
    ]
    assert books.violations(database) == []


def test_a_gateway_that_declines_by_raising_fails_the_refund_with_its_code(
    shop: Shop, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # UnionPay's adapter raises ChannelDeclined when the gateway has no paid consume to
    # refund against; the others answer a failed result. Both are a refused refund.
    order = _paid_order(shop)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]

    def decline(_request: RefundRequest) -> RefundResult:
        raise ChannelDeclined("not_paid", "The gateway has no paid trade to refund against.")

    monkeypatch.setattr(channel, "refund", decline)
    failed = _refund(shop, shop.app, order).json()
    assert (failed["status"], failed["failure_code"]) == ("failed", "not_paid")
    assert "no paid trade" in failed["failure_message"]
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert books.violations(database) == []


def test_finance_can_resolve_a_failed_refund_to_the_wallet(
    shop: Shop, finance: Caller, database: Database, clock: FrozenClock
) -> None:
    from knowpay.channels.testchannel.store import TestGatewayTrade

    order = _paid_order(shop)
    payment_id = shop.get(f"/v1/orders/{order['id']}")["payment_id"]
    store = shop.client.app.state.channel_registry.adapter("test")._store  # type: ignore[attr-defined]
    with store._database.session_scope() as session:
        session.get(TestGatewayTrade, payment_id).status = "frozen"
    failed = _refund(shop, shop.app, order).json()
    resolved = shop.client.post(
        f"/v1/refunds/{failed['id']}/resolve",
        json={"method": "wallet", "note": "card expired"},
        headers=_as(shop, finance),
    ).json()
    assert resolved["status"] == "succeeded"
    assert resolved["resolution"] == "wallet"
    assert books.account_balance(database, f"buyer_wallet:{shop.buyer.id}") == -9900
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "refunded"
    assert books.violations(database) == []
    # The gateway's own word on its refusal, arriving late, is no refund "taken back": the
    # buyer was paid from the wallet, and must not be paid again.
    with database.session_scope() as session:
        late = RefundResult(ChannelStatus.FAILED, failure_code="frozen")
        refunds_service.apply_result(
            session, failed["id"], late, clock.now(), "gateway", RefundSettings(), failed["id"]
        )
        assert session.scalars(select(Alert.kind)).all() == []


def _set_test_trade(shop: Shop, order: dict[str, Any], status: str) -> None:
    """Put the test gateway's trade of `order` in `status` ("frozen": refunds are refused)."""
    from knowpay.channels.testchannel.store import TestGatewayTrade

    payment_id = shop.get(f"/v1/orders/{order['id']}")["payment_id"]
    store = shop.client.app.state.channel_registry.adapter("test")._store  # type: ignore[attr-defined]
    with store._database.session_scope() as session:
        session.get(TestGatewayTrade, payment_id).status = status


@pytest.mark.parametrize(
    ("action", "body"),
    [("retry", None), ("resolve", {"method": "offline"}), ("resolve", {"method": "wallet"})],
)
def test_a_failed_refund_cannot_be_sent_again_or_paid_by_hand_once_later_refunds_took_its_amount(
    shop: Shop, finance: Caller, database: Database, action: str, body: dict[str, str] | None
) -> None:
    order = _paid_order(shop)  # 9900
    _set_test_trade(shop, order, "frozen")
    failed = _refund(shop, shop.app, order, amount=3000).json()
    assert failed["status"] == "failed"  # its 3000 are refundable again
    _set_test_trade(shop, order, "paid")
    assert _refund(shop, shop.app, order, amount=9000).json()["status"] == "succeeded"

    response = shop.client.post(
        f"/v1/refunds/{failed['id']}/{action}", json=body, headers=_as(shop, finance)
    )

    assert response.status_code == 422
    assert response.json()["code"] == "refund_exceeds_captured"
    assert response.json()["refundable"] == 900
    assert shop.get(f"/v1/refunds/{failed['id']}")["status"] == "failed"
    after = shop.get(f"/v1/orders/{order['id']}")
    assert (after["status"], after["amount_refunded"]) == ("partially_refunded", 9000)
    assert books.account_balance(database, f"buyer_wallet:{shop.buyer.id}") == 0
    assert books.violations(database) == []


def test_a_failed_refund_can_be_paid_by_hand_when_its_amount_is_still_refundable(
    shop: Shop, finance: Caller, database: Database
) -> None:
    order = _paid_order(shop)  # 9900
    _set_test_trade(shop, order, "frozen")
    failed = _refund(shop, shop.app, order, amount=3000).json()
    _set_test_trade(shop, order, "paid")
    assert _refund(shop, shop.app, order, amount=6900).json()["status"] == "succeeded"

    resolved = shop.client.post(
        f"/v1/refunds/{failed['id']}/resolve",
        json={"method": "offline"},
        headers=_as(shop, finance),
    )

    assert resolved.status_code == 200
    assert resolved.json()["status"] == "succeeded"
    after = shop.get(f"/v1/orders/{order['id']}")
    assert (after["status"], after["amount_refunded"]) == ("refunded", 9900)
    assert books.violations(database) == []


def test_a_refund_still_processing_cannot_be_paid_by_hand(
    shop: Shop,
    finance: Caller,
    worker: Worker,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a failed refund is resolved by hand: one in processing holds its amount in
    refunds_in_flight and the gateway may still pay it, so paying it to the wallet as well
    would take the money from revenue twice and refund the buyer twice."""
    order = _paid_order(shop)
    back_up = _gateway_refunds_raise(shop, monkeypatch, ChannelUnavailable("connection refused"))
    refund = _refund(shop, shop.app, order).json()
    assert refund["status"] == "processing"

    response = shop.client.post(
        f"/v1/refunds/{refund['id']}/resolve",
        json={"method": "wallet"},
        headers=_as(shop, finance),
    )

    assert response.status_code == 409
    assert response.json()["code"] == "refund_not_pending"
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "processing"
    assert books.account_balance(database, f"buyer_wallet:{shop.buyer.id}") == 0
    assert books.violations(database) == []
    back_up()
    clock.advance(SENT_BY_THE_REQUEST_FOR)
    worker.run_jobs_once()
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "succeeded"
    assert books.violations(database) == []


def test_an_unreachable_gateway_leaves_the_refund_processing_until_the_worker_sends_it(
    shop: Shop,
    worker: Worker,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from knowpay.channels.errors import ChannelUnavailable

    order = _paid_order(shop)
    back_up = _gateway_refunds_raise(shop, monkeypatch, ChannelUnavailable("connection refused"))
    refund = _refund(shop, shop.app, order).json()
    assert refund["status"] == "processing"
    assert books.violations(database) == []
    back_up()
    worker.run_jobs_once()  # still the request's to send: the send job keeps off it a while
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "processing"
    clock.advance(SENT_BY_THE_REQUEST_FOR)
    worker.run_jobs_once()
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "succeeded"
    assert books.violations(database) == []


def test_the_send_job_does_not_send_a_refund_while_its_request_is_sending_it(
    shop: Shop, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sends at once would be two calls at the gateway under one refund number."""
    order = _paid_order(shop)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    original, at_gateway, go_on = channel.refund, threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_gateway(request: RefundRequest) -> RefundResult:
        calls.append(request.out_refund_no)
        at_gateway.set()
        assert go_on.wait(10)
        result: RefundResult = original(request)
        return result

    monkeypatch.setattr(channel, "refund", slow_gateway)
    with ThreadPoolExecutor(max_workers=1) as pool:
        sending = pool.submit(_refund, shop, shop.app, order)
        assert at_gateway.wait(10)
        worker.run_jobs_once()  # the send job runs while the request waits for the gateway
        go_on.set()
        refund = sending.result(timeout=10).json()

    assert refund["status"] == "succeeded"
    assert calls == [refund["id"]]


def test_a_refund_the_gateway_holds_is_on_the_timeline_and_brought_to_staff_once(
    shop: Shop,
    worker: Worker,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WeChat Pay's ABNORMAL: the gateway keeps the refund until the merchant acts; each
    active query says so again, and staff hear of it once."""
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    accepted = RefundResult(ChannelStatus.PENDING, gateway_refund_no="testrf_held")
    held = RefundResult(ChannelStatus.PENDING, attention="The gateway holds the refund.")
    monkeypatch.setattr(channel, "refund", lambda _request: accepted)
    monkeypatch.setattr(channel, "query_refund", lambda *_args, **_kwargs: held)
    refund = _refund(shop, shop.app, _paid_order(shop)).json()
    assert refund["status"] == "processing"
    for _ in range(2):
        clock.advance(timedelta(minutes=5))
        worker.run_jobs_once()
    after = shop.get(f"/v1/refunds/{refund['id']}")
    assert after["status"] == "processing"
    held_steps = [s for s in after["timeline"] if s["step"] == "gateway_needs_action"]
    assert len(held_steps) == 1
    with database.session_scope() as session:
        [alert] = session.scalars(select(Alert)).all()
        assert alert.kind == "refund_needs_action"
        alert.acknowledged_at = clock.now()  # staff saw it; the gateway still holds it
    clock.advance(timedelta(minutes=5))
    worker.run_jobs_once()
    with database.session_scope(read_only=True) as session:
        assert len(session.scalars(select(Alert.id)).all()) == 2  # told again
    again = shop.get(f"/v1/refunds/{refund['id']}")["timeline"]
    assert [s["step"] for s in again].count("gateway_needs_action") == 1  # the buyer's view
    assert books.violations(database) == []


def test_a_duplicate_refund_locks_the_order_before_it_claims_the_payment(
    shop: Shop, database: Database, clock: FrozenClock
) -> None:
    """The one lock order (order, then payment): claiming the payment first deadlocked on
    PostgreSQL with a capture holding the order (seen under a crash-and-load run)."""
    order = shop.order()
    first, second = shop.pay(order), shop.pay(order)
    shop.confirm(first)
    shop.confirm(second)  # the duplicate, not refunded yet: no worker ran
    engine = shop.client.app.state.database.engine  # type: ignore[attr-defined]
    with statements_sent(engine) as sent, database.session_scope() as session:
        assert refunds_service.start_duplicate_refund(session, second["id"], clock.now())
    touching = [s.split()[0] + " " + _table(s) for s in sent if _table(s) in ("orders", "payments")]
    assert touching.index("SELECT orders") < touching.index("UPDATE payments")


def _table(statement: str) -> str:
    words = statement.replace("\n", " ").split()
    keyword = {"SELECT": "FROM", "UPDATE": "UPDATE", "INSERT": "INTO"}.get(words[0], "")
    return words[words.index(keyword) + 1] if keyword in words else ""


def test_a_duplicate_payment_is_refunded_automatically(
    shop: Shop, worker: Worker, database: Database
) -> None:
    order = shop.order()
    first, second = shop.pay(order), shop.pay(order)
    shop.confirm(first)
    shop.confirm(second)  # paid twice at the gateway
    worker.run_jobs_once()  # the duplicate is refunded; the gateway-side close found it paid
    refunds = shop.get(f"/v1/refunds?order_id={order['id']}")["data"]
    [duplicate_refund] = refunds
    assert duplicate_refund["kind"] == "duplicate"
    assert duplicate_refund["payment_id"] == second["id"]
    assert duplicate_refund["status"] == "succeeded"
    assert duplicate_refund["reason_text"].startswith("The order was already paid;")
    after = shop.get(f"/v1/orders/{order['id']}")
    assert after["status"] == "paid"
    assert after["amount_refunded"] == 0
    assert books.account_balance(database, "duplicate_payments_payable") == 0
    assert books.account_balance(database, PLATFORM_REVENUE) == -9900
    assert books.violations(database) == []
    worker.run_jobs_once()
    assert len(shop.get(f"/v1/refunds?order_id={order['id']}")["data"]) == 1
    support = shop.build.staff(Role.SUPPORT)
    listed = shop.client.get("/v1/admin/duplicate-payments", headers=support.headers).json()["data"]
    assert [p["id"] for p in listed] == [second["id"]]
    assert (
        shop.client.get("/v1/admin/duplicate-payments", headers=shop.app.headers).status_code == 403
    )


def test_a_payment_that_arrives_after_the_order_closed_goes_back_saying_so(
    shop: Shop, worker: Worker, database: Database, clock: FrozenClock
) -> None:
    """Found by an independent Alipay implementation: the automatic refund told the payer the
    order "was already paid" when it had been closed unpaid."""
    order = shop.order()
    payment = shop.pay(order)
    closed = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.json()["status"] == "closed"
    with database.session_scope() as session:  # paid at the gateway just as it closed
        payments_service.record_capture(
            session, payment["id"], Money(9900, "CNY"), payment["gateway_trade_no"], clock.now()
        )
    worker.run_jobs_once()
    [refund] = shop.get(f"/v1/refunds?order_id={order['id']}")["data"]
    assert (refund["kind"], refund["payment_id"]) == ("duplicate", payment["id"])
    assert refund["reason_text"].startswith("The order was closed before this payment arrived")


def test_refunds_are_private_to_their_buyer_and_app(shop: Shop, build: Builders) -> None:
    order = _paid_order(shop)
    refund = _refund(shop, shop.buyer, order).json()
    stranger = build.buyer(shop.app)
    assert (
        shop.client.get(f"/v1/refunds/{refund['id']}", headers=stranger.headers).status_code == 404
    )
    assert (
        shop.client.get(f"/v1/refunds/{refund['id']}", headers=build.app("x").headers).status_code
        == 404
    )
    assert _refund(shop, stranger, order).status_code == 404
    assert shop.client.get("/v1/refunds", headers=stranger.headers).json()["data"] == []


def test_refunding_an_unpaid_order_is_409(shop: Shop) -> None:
    response = _refund(shop, shop.app, shop.order())
    assert response.status_code == 409
    assert response.json()["code"] == "order_not_paid"


def test_a_buyer_cannot_ask_after_the_buyer_window(shop: Shop, clock: FrozenClock) -> None:
    order = _paid_order(shop)
    clock.advance(timedelta(days=400))
    assert _refund(shop, shop.buyer, order).json()["code"] == "refund_window_closed"
    assert _refund(shop, shop.app, order).status_code == 201


def test_a_reason_outside_the_list_is_kept_as_text_under_other(shop: Shop) -> None:
    order = _paid_order(shop)
    refund = _refund(shop, shop.app, order, reason="不想学了").json()
    assert (refund["reason"], refund["reason_text"]) == ("other", "不想学了")


def test_a_refund_whose_request_died_after_its_approval_is_answered_from_the_key_not_made_twice(
    shop: Shop,
    worker: Worker,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The approval is committed before the gateway hears of the refund; a request that dies
    after that (here: an unexpected error in the gateway call, a 500) must leave its key
    answering with that refund, or its retry would refund the buyer a second time."""
    order = _paid_order(shop)
    back_up = _gateway_refunds_raise(
        shop, monkeypatch, RuntimeError("the process died during the gateway call")
    )
    headers = {**shop.app.headers, "Idempotency-Key": "refund-once"}
    body = {"order_id": order["id"], "amount": 3000, "reason": "accidental_purchase"}
    first = shop.client.post("/v1/refunds", json=body, headers=headers)
    assert first.status_code == 500, first.text

    back_up()
    retry = shop.client.post("/v1/refunds", json=body, headers=headers)

    assert retry.status_code == 201, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["status"] == "processing"
    clock.advance(SENT_BY_THE_REQUEST_FOR)
    worker.run_jobs_once()  # the send job sends the refund the dead request approved
    refunds = shop.get(f"/v1/refunds?order_id={order['id']}")["data"]
    assert [(r["id"], r["status"], r["amount"]) for r in refunds] == [
        (retry.json()["id"], "succeeded", 3000)
    ]
    assert shop.get(f"/v1/orders/{order['id']}")["amount_refunded"] == 3000
    assert books.violations(database) == []


def test_a_retry_while_the_refund_is_at_the_gateway_is_409_and_later_the_final_answer(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interim answer is kept for a request that died; while the request still runs, a
    retry hears 409 `idempotency_key_in_use` (API.md), and afterwards the final answer."""
    order = _paid_order(shop)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    original, at_gateway, go_on = channel.refund, threading.Event(), threading.Event()

    def held_at_the_gateway(request: object) -> object:
        at_gateway.set()
        assert go_on.wait(10)
        return original(request)

    monkeypatch.setattr(channel, "refund", held_at_the_gateway)
    headers = {**shop.app.headers, "Idempotency-Key": "refund-while-running"}
    body = {"order_id": order["id"], "amount": 3000, "reason": "accidental_purchase"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(shop.client.post, "/v1/refunds", json=body, headers=headers)
        assert at_gateway.wait(10)
        during = shop.client.post("/v1/refunds", json=body, headers=headers)
        go_on.set()
        first = running.result(timeout=10)
    after = shop.client.post("/v1/refunds", json=body, headers=headers)

    assert (during.status_code, during.json()["code"]) == (409, "idempotency_key_in_use")
    assert (first.status_code, first.json()["status"]) == (201, "succeeded"), first.text
    assert (after.status_code, after.content) == (201, first.content)
    assert after.headers["idempotent-replayed"] == "true"
    assert len(shop.get(f"/v1/refunds?order_id={order['id']}")["data"]) == 1


def test_a_retried_refund_request_replays_the_final_answer_not_the_interim_one(
    shop: Shop,
) -> None:
    order = _paid_order(shop)
    headers = {**shop.app.headers, "Idempotency-Key": "refund-final"}
    body = {"order_id": order["id"], "amount": 3000, "reason": "accidental_purchase"}

    first = shop.client.post("/v1/refunds", json=body, headers=headers)
    retry = shop.client.post("/v1/refunds", json=body, headers=headers)

    assert (first.status_code, first.json()["status"]) == (201, "succeeded"), first.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert (retry.status_code, retry.content) == (201, first.content)
    assert len(shop.get(f"/v1/refunds?order_id={order['id']}")["data"]) == 1


def test_a_partial_refund_keeps_the_content_by_default(shop: Shop, database: Database) -> None:
    order = _paid_order(shop)
    assert _refund(shop, shop.app, order, amount=3000).json()["status"] == "succeeded"
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert entitlement.revoked_at is None
    assert books.events(database, "entitlement.revoked") == []


def test_a_buyer_may_ask_on_the_last_moment_of_the_window_and_not_a_second_later(
    shop: Shop, clock: FrozenClock
) -> None:
    order = _paid_order(shop)
    clock.advance(timedelta(days=365))  # buyer_request_window_days
    assert _refund(shop, shop.buyer, order, amount=100).status_code == 201
    clock.advance(timedelta(seconds=1))
    late = _refund(shop, shop.buyer, order, amount=100)
    assert late.json()["code"] == "refund_window_closed"


def test_a_duplicate_refund_the_gateway_refuses_leaves_the_money_owed_to_the_buyer(
    shop: Shop, worker: Worker, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed refund of a duplicate puts the money back where it came from (what is owed
    to the buyer), not into the platform's revenue."""
    order = shop.order()
    first, second = shop.pay(order), shop.pay(order)
    shop.confirm(first)
    shop.confirm(second)  # paid twice at the gateway
    _gateway_refunds_raise(
        shop, monkeypatch, ChannelDeclined("not_paid", "The gateway has no paid trade.")
    )
    worker.run_jobs_once()
    [duplicate_refund] = shop.get(f"/v1/refunds?order_id={order['id']}")["data"]
    assert (duplicate_refund["kind"], duplicate_refund["status"]) == ("duplicate", "failed")
    assert books.account_balance(database, "duplicate_payments_payable") == -9900
    assert books.account_balance(database, PLATFORM_REVENUE) == -9900
    assert books.account_balance(database, REFUNDS_IN_FLIGHT) == 0
    assert books.violations(database) == []


def test_an_outcome_for_another_attempts_refund_number_does_not_settle_the_refund(
    shop: Shop, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late answer naming a refund number the refund no longer sends under (an earlier
    attempt's) says nothing about the refund's money: it stays processing."""
    order = _paid_order(shop)
    _gateway_refunds_raise(shop, monkeypatch, ChannelUnavailable("connection refused"))
    refund = _refund(shop, shop.app, order).json()
    assert refund["status"] == "processing"
    with database.session_scope() as session:
        refunds_service.apply_result(
            session,
            refund["id"],
            RefundResult(ChannelStatus.SUCCEEDED),
            clock.now(),
            "gateway",
            RefundSettings(),
            out_refund_no=f"{refund['id']}_earlier",
        )
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "processing"
    assert shop.get(f"/v1/orders/{order['id']}")["amount_refunded"] == 0
    assert books.entries(database, kind="refund_succeeded") == []
    assert books.violations(database) == []
