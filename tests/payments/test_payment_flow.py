"""Paying an order through the test channel: one capture, its ledger entry, entitlements and
events together; failures, closing, duplicates and active query."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from knowpay.channels.errors import ChannelUnavailable
from knowpay.channels.health import ChannelCircuitOpen
from knowpay.channels.types import ChannelStatus, PaymentQueryResult
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.ledger.accounts import DUPLICATE_PAYMENTS_PAYABLE, PLATFORM_REVENUE, channel_clearing
from knowpay.payments.errors import RETRY_UNREACHABLE_AFTER_S
from knowpay.payments.service import gateway_error
from knowpay.payments.states import IllegalPaymentTransition, PaymentStatus, next_status
from tests import books
from tests.builders import Builders, Shop
from tests.statements import statements_sent


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def test_a_confirmed_payment_pays_the_order_once_with_ledger_entitlement_and_events(
    shop: Shop, database: Database
) -> None:
    order = shop.order()
    payment = shop.pay(order)
    assert payment["status"] == "pending"
    assert payment["action"] == {"type": "none"}
    assert shop.confirm(payment)["notification"] == "processed"

    paid = shop.get(f"/v1/orders/{order['id']}")
    assert paid["status"] == "paid"
    assert paid["payment_id"] == payment["id"]
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "succeeded"
    [entry] = books.entries(database, kind="payment_captured")
    assert entry.payment_id == payment["id"]
    assert books.account_balance(database, channel_clearing("test")) == 9900
    assert books.account_balance(database, PLATFORM_REVENUE) == -9900
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert entitlement.product_id == shop.course["id"]
    assert entitlement.valid_until is None
    types = [e["type"] for e in books.events(database, stream_key=order["id"])]
    assert types == ["payment.succeeded", "order.paid", "entitlement.granted"]
    assert books.violations(database) == []


def test_the_buyer_sees_the_content_through_the_entitlements_api(
    shop: Shop, client: TestClient
) -> None:
    shop.confirm(shop.pay(shop.order()))
    mine = client.get("/v1/entitlements", headers=shop.buyer.headers).json()["data"]
    assert [e["product_id"] for e in mine] == [shop.course["id"]]
    by_app = client.get(
        f"/v1/entitlements?user_id={shop.buyer.id}", headers=shop.app.headers
    ).json()["data"]
    assert by_app == mine
    stranger = shop.build.buyer(shop.app)
    assert (
        client.get(f"/v1/entitlements?user_id={shop.buyer.id}", headers=stranger.headers).json()[
            "data"
        ]
        == []
    )


def test_a_repeated_notification_changes_nothing(shop: Shop, database: Database) -> None:
    order = shop.order()
    payment = shop.pay(order)
    assert shop.confirm(payment)["notification"] == "processed"
    for _ in range(3):
        assert shop.confirm(payment)["notification"] == "duplicate"
    assert len(books.entries(database, kind="payment_captured")) == 1
    assert len(books.events(database, "order.paid")) == 1
    assert len(books.entitlements(database, shop.buyer.id)) == 1


def test_immediate_success_and_decline_decided_by_test_outcome(
    shop: Shop, database: Database
) -> None:
    declined = shop.pay(order := shop.order(), test_outcome="failed")
    assert declined["status"] == "failed"
    assert declined["failure_code"] == "test_declined"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    retried = shop.pay(order, test_outcome="succeeded")
    assert retried["status"] == "succeeded"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    types = [e["type"] for e in books.events(database, stream_key=order["id"])]
    assert types[0] == "payment.failed"
    assert "order.paid" in types
    assert books.violations(database) == []


@pytest.mark.parametrize(
    ("amount", "status"), [(10666, "failed"), (10777, "succeeded"), (10555, "pending")]
)
def test_magic_amounts_decide_like_test_cards(
    shop: Shop, build: Builders, amount: int, status: str
) -> None:
    product = build.product(shop.app, prices=[{"amount": amount, "currency": "CNY"}])
    assert shop.pay(shop.order(product))["status"] == status


@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [
        (ChannelUnavailable("connection refused"), str(RETRY_UNREACHABLE_AFTER_S)),
        (ChannelCircuitOpen("alipay", retry_after_s=17), "17"),  # the breaker's time left
    ],
)
def test_a_gateway_that_cannot_be_reached_is_a_503_that_says_when_to_retry(
    failure: ChannelUnavailable, retry_after: str
) -> None:
    """What a sync, a close or a payment's gateway call answers when the gateway is down."""
    problem = gateway_error("alipay_qr", failure)

    assert (problem.status, problem.code) == (503, "channel_unavailable")
    assert problem.extra["headers"] == {"Retry-After": retry_after}


def test_an_unreachable_gateway_is_503_and_the_order_stays_payable(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    order = shop.order()
    with caplog.at_level(logging.WARNING, logger="knowpay.payments"):
        response = shop.client.post(
            f"/v1/orders/{order['id']}/payments",
            json={"channel": "test", "test_outcome": "unavailable"},
            headers=shop.app.headers,
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(RETRY_UNREACHABLE_AFTER_S)
    problem = response.json()
    assert problem["code"] == "channel_unavailable"
    # The reason is logged: the platform's 503 says only that the gateway was unreachable.
    assert [record.getMessage() for record in caplog.records] == [
        f"payment {problem['payment_id']} on test failed at the gateway: "
        "the test gateway was asked to be unreachable"
    ]
    failed = shop.get(f"/v1/payments/{problem['payment_id']}")
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "channel_unavailable"
    assert shop.pay(order)["status"] == "pending"


def test_unknown_and_unconfigured_channels_are_422(shop: Shop) -> None:
    order = shop.order()
    for channel, code in (("bitcoin", "unknown_channel"), ("alipay_qr", "channel_not_configured")):
        response = shop.client.post(
            f"/v1/orders/{order['id']}/payments",
            json={"channel": channel},
            headers=shop.app.headers,
        )
        assert response.status_code == 422
        assert response.json()["code"] == code


def test_two_attempts_both_paid_record_the_second_as_a_duplicate(
    shop: Shop, database: Database
) -> None:
    order = shop.order()
    first, second = shop.pay(order), shop.pay(order)
    shop.confirm(first)
    assert shop.get(f"/v1/payments/{second['id']}")["status"] == "closed"
    # The buyer had already paid the second attempt at the gateway: it is captured all the same.
    assert shop.confirm(second)["notification"] == "processed"
    duplicate = shop.get(f"/v1/payments/{second['id']}")
    assert duplicate["status"] == "succeeded"
    assert duplicate["is_duplicate"] is True
    paid = shop.get(f"/v1/orders/{order['id']}")
    assert paid["status"] == "paid"
    assert paid["payment_id"] == first["id"]
    assert len(books.entries(database, kind="payment_captured")) == 1
    assert len(books.entries(database, kind="duplicate_captured")) == 1
    assert books.account_balance(database, DUPLICATE_PAYMENTS_PAYABLE) == -9900
    assert books.account_balance(database, PLATFORM_REVENUE) == -9900
    assert len(books.events(database, "payment.duplicate_detected")) == 1
    assert len(books.events(database, "order.paid")) == 1
    assert len(books.entitlements(database, shop.buyer.id)) == 1
    assert books.violations(database) == []


def test_a_paid_order_refuses_new_attempts(shop: Shop) -> None:
    order = shop.order()
    shop.pay(order, test_outcome="succeeded")
    response = shop.client.post(
        f"/v1/orders/{order['id']}/payments", json={"channel": "test"}, headers=shop.app.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "order_already_paid"


def test_closing_closes_pending_attempts_at_the_gateway(shop: Shop, database: Database) -> None:
    order = shop.order()
    payment = shop.pay(order)
    closed = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "closed"
    # The gateway closed the trade too: the buyer can no longer pay it there.
    late = shop.client.post(f"/sandbox/test/payments/{payment['id']}/confirm", json={})
    assert late.status_code == 409
    assert late.json()["code"] == "trade_closed"
    assert [e["type"] for e in books.events(database, stream_key=order["id"])] == ["order.closed"]
    again = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert again.status_code == 200
    refused = shop.client.post(
        f"/v1/orders/{order['id']}/payments", json={"channel": "test"}, headers=shop.app.headers
    )
    assert refused.json()["code"] == "order_not_payable"


def _writable_now(database: Database, order_id: str) -> bool:
    """Whether another connection could change the order at once (nobody holds it)."""
    if database.dialect == "postgresql":
        with database.engine.connect() as connection:
            try:
                connection.execute(
                    text("SELECT id FROM orders WHERE id = :id FOR UPDATE NOWAIT"), {"id": order_id}
                )
                return True
            except OperationalError:
                return False
            finally:
                connection.rollback()
    other = sqlite3.connect(str(database.engine.url.database), timeout=0.2)
    try:
        other.execute("BEGIN IMMEDIATE")  # SQLite has one writer at a time
        other.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def test_closing_holds_no_lock_while_the_gateway_answers(
    shop: Shop, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held through a gateway call stalls whoever needs it for as long as the gateway
    takes; on SQLite that is every write (seen: 15 s stalls and 503s under load)."""
    order = shop.order()
    payment = shop.pay(order)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    close_at_gateway = channel.close_payment
    seen: list[bool] = []

    def closing(*args: Any, **kwargs: Any) -> Any:
        seen.append(_writable_now(database, order["id"]))
        return close_at_gateway(*args, **kwargs)

    monkeypatch.setattr(channel, "close_payment", closing)
    closed = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.json()["status"] == "closed"
    assert seen == [True]
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "closed"


def test_closing_an_order_the_gateway_already_paid_records_the_payment(
    shop: Shop, database: Database
) -> None:
    order = shop.order()
    payment = shop.pay(order)
    shop.confirm(payment, notify=False)  # paid at the gateway; the notification is lost
    response = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "order_already_paid"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert books.violations(database) == []


def test_a_lost_notification_is_recovered_by_active_query(shop: Shop, database: Database) -> None:
    order = shop.order()
    payment = shop.pay(order)
    assert shop.confirm(payment, notify=False)["notification"] is None
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    synced = shop.client.post(f"/v1/payments/{payment['id']}/sync", headers=shop.app.headers)
    assert synced.status_code == 200
    assert synced.json()["status"] == "succeeded"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    # A notification arriving after the query is a no-op.
    assert shop.confirm(payment)["notification"] == "processed"
    assert len(books.entries(database, kind="payment_captured")) == 1
    assert books.violations(database) == []


def test_a_failed_payment_at_the_gateway_leaves_the_order_payable(
    shop: Shop, database: Database
) -> None:
    order = shop.order()
    payment = shop.pay(order)
    assert shop.confirm(payment, outcome="failed")["notification"] == "processed"
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "failed"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert [e["type"] for e in books.events(database, stream_key=order["id"])] == ["payment.failed"]


def test_a_forged_notification_is_stored_rejected_and_changes_nothing(
    shop: Shop, database: Database
) -> None:
    order = shop.order()
    payment = shop.pay(order)
    body = json.dumps(
        {
            "id": "evt_forged",
            "type": "payment.succeeded",
            "out_trade_no": payment["id"],
            "gateway_trade_no": payment["gateway_trade_no"],
            "amount": "99.00",
            "currency": "CNY",
        }
    ).encode()
    for signature in ("t=1767268800,v1=" + "0" * 64, "garbage", ""):
        response = shop.client.post(
            "/notify/test",
            content=body,
            headers={"Knowpay-Test-Signature": signature, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json() == {"received": False}
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    [stored] = books.notifications(database)
    assert stored.verified is False
    assert stored.outcome == "rejected"
    assert stored.body == body


def test_a_notification_for_another_amount_is_rejected(
    shop: Shop, database: Database, app: object
) -> None:
    from knowpay.channels.testchannel import signing
    from knowpay.kit.crypto import derive_key

    order = shop.order()
    payment = shop.pay(order)
    key = derive_key("test-secret-key-0123456789-abcdefghijklmnop", "knowpay/test-channel/v1")
    body = json.dumps(
        {
            "id": "evt_tampered",
            "type": "payment.succeeded",
            "out_trade_no": payment["id"],
            "gateway_trade_no": payment["gateway_trade_no"],
            "amount": "0.01",
            "currency": "CNY",
        }
    ).encode()
    header = signing.sign(key, int(shop.build.clock.now().timestamp()), body)
    response = shop.client.post(
        "/notify/test", content=body, headers={"Knowpay-Test-Signature": header}
    )
    assert response.status_code == 400
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    [stored] = books.notifications(database)
    assert stored.verified is True
    assert stored.outcome == "rejected"
    assert "amount" in (stored.reason or "").lower()
    # The gateway retrying the same notification keeps being refused.
    assert (
        shop.client.post(
            "/notify/test", content=body, headers={"Knowpay-Test-Signature": header}
        ).status_code
        == 400
    )


def test_a_notification_to_an_unknown_gateway_is_404(client: TestClient) -> None:
    response = client.post("/notify/bitcoin", content=b"{}")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_gateway"


def test_payments_are_visible_only_to_their_buyer_and_app(
    shop: Shop, build: Builders, client: TestClient
) -> None:
    payment = shop.pay(shop.order())
    assert (
        client.get(f"/v1/payments/{payment['id']}", headers=shop.buyer.headers).status_code == 200
    )
    assert (
        client.get(
            f"/v1/payments/{payment['id']}", headers=build.buyer(shop.app).headers
        ).status_code
        == 404
    )
    assert (
        client.get(f"/v1/payments/{payment['id']}", headers=build.app("x").headers).status_code
        == 404
    )


def test_a_buyer_may_start_paying_their_own_order(shop: Shop, client: TestClient) -> None:
    order = shop.order()
    response = client.post(
        f"/v1/orders/{order['id']}/payments", json={"channel": "test"}, headers=shop.buyer.headers
    )
    assert response.status_code == 201
    stranger = shop.build.buyer(shop.app)
    response = client.post(
        f"/v1/orders/{order['id']}/payments", json={"channel": "test"}, headers=stranger.headers
    )
    assert response.status_code == 404


def test_the_payment_transition_table() -> None:
    assert next_status("pending", PaymentStatus.SUCCEEDED) is PaymentStatus.SUCCEEDED
    assert next_status("closed", PaymentStatus.SUCCEEDED) is PaymentStatus.SUCCEEDED
    for current, target in [
        ("succeeded", PaymentStatus.FAILED),
        ("succeeded", PaymentStatus.PENDING),
        ("failed", PaymentStatus.CLOSED),
        ("closed", PaymentStatus.PENDING),
    ]:
        with pytest.raises(IllegalPaymentTransition):
            next_status(current, target)


def test_a_retried_payment_request_with_the_same_key_makes_one_attempt(shop: Shop) -> None:
    order = shop.order()
    headers = {**shop.app.headers, "Idempotency-Key": "pay-once-7f3a"}
    first = shop.client.post(
        f"/v1/orders/{order['id']}/payments", json={"channel": "test"}, headers=headers
    )
    again = shop.client.post(
        f"/v1/orders/{order['id']}/payments", json={"channel": "test"}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    attempts = shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert [a["id"] for a in attempts] == [first.json()["id"]]


def test_a_verified_notification_for_an_unknown_trade_is_acknowledged_and_alerted(
    shop: Shop, database: Database, client: TestClient
) -> None:
    from knowpay.auth.principals import Role
    from knowpay.channels.testchannel import signing
    from knowpay.kit.crypto import derive_key

    key = derive_key("test-secret-key-0123456789-abcdefghijklmnop", "knowpay/test-channel/v1")
    body = json.dumps(
        {
            "id": "evt_stranger",
            "type": "payment.succeeded",
            "out_trade_no": "pay_not_ours",
            "gateway_trade_no": "test_pay_not_ours",
            "amount": "1.00",
            "currency": "CNY",
        }
    ).encode()
    header = signing.sign(key, int(shop.build.clock.now().timestamp()), body)
    response = client.post("/notify/test", content=body, headers={"Knowpay-Test-Signature": header})
    assert response.status_code == 200
    [stored] = books.notifications(database)
    assert stored.outcome == "unknown_trade"
    support = shop.build.staff(Role.SUPPORT)
    alerts = client.get("/v1/admin/alerts", headers=support.headers).json()["data"]
    assert [a["kind"] for a in alerts] == ["notification_unknown_trade"]
    assert client.get("/v1/admin/alerts", headers=shop.app.headers).status_code == 403


def test_a_rejected_notification_raises_an_alert_for_staff(shop: Shop, client: TestClient) -> None:
    from knowpay.auth.principals import Role

    client.post(
        "/notify/test", content=b'{"id": "x"}', headers={"Knowpay-Test-Signature": "t=1,v1=00"}
    )
    finance = shop.build.staff(Role.FINANCE)
    alerts = client.get("/v1/admin/alerts", headers=finance.headers).json()["data"]
    assert [a["kind"] for a in alerts] == ["notification_rejected"]


def test_starting_a_payment_reads_its_order_once(shop: Shop, app: FastAPI) -> None:
    """One read (locked) while the attempt is written; recording the gateway's answer locks
    only the attempt (the order is locked again only when that answer says it is paid)."""
    order = shop.order()
    with statements_sent(app.state.database.engine) as statements:
        payment = shop.pay(order)

    assert payment["status"] == "pending"
    order_reads = [s for s in statements if "FROM orders" in s]
    assert len(order_reads) == 1, order_reads


def test_a_capture_locks_the_order_by_its_payment_in_one_statement(
    shop: Shop, app: FastAPI
) -> None:
    """The order is found from the payment inside its locking SELECT: the payment is read
    once, under its lock, and once more with the order's other open attempts."""
    payment = shop.pay(shop.order())
    with statements_sent(app.state.database.engine) as statements:
        assert shop.confirm(payment)["notification"] == "processed"

    payment_reads = [s for s in statements if s.startswith("SELECT payments.id")]
    assert len(payment_reads) == 2, payment_reads
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "succeeded"


def test_starting_a_payment_reads_the_buyers_level_inside_the_limits_query(
    shop: Shop, app: FastAPI
) -> None:
    order = shop.order()
    with statements_sent(app.state.database.engine) as statements:
        shop.pay(order)

    assert not [s for s in statements if s.startswith("SELECT users.")]
    [limits_query] = [s for s in statements if "FROM spending_limits" in s]
    assert "SELECT users.level" in limits_query


def test_a_trade_the_gateway_closed_unpaid_closes_the_attempt_and_leaves_the_order_payable(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alipay's TRADE_CLOSED, WeChat Pay's CLOSED: asking again would never bring news."""
    order = shop.order()
    payment = shop.pay(order)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    closed = PaymentQueryResult(status=ChannelStatus.CLOSED)
    monkeypatch.setattr(channel, "query_payment", lambda *_args, **_kwargs: closed)
    synced = shop.client.post(f"/v1/payments/{payment['id']}/sync", headers=shop.app.headers)
    assert synced.json()["status"] == "closed"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    monkeypatch.undo()
    assert shop.confirm(shop.pay(order))["notification"] == "processed"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"


def test_no_payment_starts_while_a_close_asks_the_gateways(
    shop: Shop, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The close holds no lock then, so the order carries a closing mark instead: a payment
    started meanwhile would hand the payer a trade on an order about to close."""
    order = shop.order()
    shop.pay(order)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    close_at_gateway = channel.close_payment
    meanwhile: list[Any] = []

    def closing(*args: Any, **kwargs: Any) -> Any:
        meanwhile.append(
            shop.client.post(
                f"/v1/orders/{order['id']}/payments",
                json={"channel": "test"},
                headers=shop.app.headers,
            )
        )
        return close_at_gateway(*args, **kwargs)

    monkeypatch.setattr(channel, "close_payment", closing)
    closed = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.json()["status"] == "closed"
    [refused] = meanwhile
    assert refused.status_code == 409
    assert refused.json()["code"] == "order_not_payable"
    statuses = [p["status"] for p in shop.get(f"/v1/orders/{order['id']}/payments")["data"]]
    assert statuses == ["closed"]


def test_a_close_that_cannot_reach_the_gateway_leaves_the_order_payable(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowpay.channels.errors import ChannelUnavailable

    order = shop.order()
    shop.pay(order)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]

    def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise ChannelUnavailable("connection refused")

    monkeypatch.setattr(channel, "close_payment", unreachable)
    failed = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert failed.status_code == 503
    monkeypatch.undo()
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert shop.confirm(shop.pay(order))["notification"] == "processed"


def test_a_close_whose_gateway_reports_a_capture_that_does_not_fit_leaves_the_order_payable(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: the capture the gateway reported on closing was refused (another
    amount here; another trade alike), and the order kept its closing mark, so no payment
    could start on it until the mark went stale."""
    order = shop.order()
    shop.pay(order)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    odd = PaymentQueryResult(status=ChannelStatus.SUCCEEDED, amount=Money(1, "CNY"))
    monkeypatch.setattr(channel, "close_payment", lambda *_args, **_kwargs: odd)
    refused = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert (refused.status_code, refused.json()["code"]) == (422, "amount_mismatch")
    monkeypatch.undo()
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert shop.confirm(shop.pay(order))["notification"] == "processed"
