"""Scheduled jobs with a controllable clock: expiry, active query, closing abandoned
attempts at the gateway, reminders, purging idempotency keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from knowpay.alerts.models import Alert
from knowpay.channels.types import ChannelStatus, PaymentQueryResult
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.orders.models import Order
from knowpay.payments.models import Payment
from knowpay.worker.runner import Worker
from tests import books
from tests.builders import Builders, Shop


@pytest.fixture
def worker(app: FastAPI, settings: Settings, database: Database, clock: FrozenClock) -> Worker:
    return Worker(settings, database, clock, app.state.channel_registry)


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def test_an_expired_order_is_closed_with_its_attempts_and_emits_order_closed(
    worker: Worker, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    order = shop.order(expires_in=600)
    payment = shop.pay(order)
    assert worker.run_jobs_once()["expire_orders"] == 0
    clock.advance(timedelta(minutes=10))
    assert worker.run_jobs_once()["expire_orders"] == 1
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "closed"
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "closed"
    # Closed at the gateway too: the buyer can no longer pay the old QR code.
    late = shop.client.post(f"/sandbox/test/payments/{payment['id']}/confirm", json={})
    assert late.json()["code"] == "trade_closed"
    assert [e["type"] for e in books.events(database, "order.closed")] == ["order.closed"]
    assert worker.run_jobs_once()["expire_orders"] == 0


def test_an_order_another_close_is_working_on_is_left_to_it_then_expired_if_it_died(
    worker: Worker, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    """The close commits before asking the gateways: its mark, not a row lock, tells another
    worker's expiry job to keep off (it would ask the gateways a second time)."""
    order = shop.order(expires_in=600)
    shop.pay(order)
    clock.advance(timedelta(minutes=10))
    with database.session_scope() as session:
        session.get(Order, order["id"]).closing_since = clock.now()  # another close, running
    assert worker.run_jobs_once()["expire_orders"] == 0
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    clock.advance(timedelta(minutes=2))  # that close died without clearing its mark
    assert worker.run_jobs_once()["expire_orders"] == 1
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "closed"


def test_an_expired_order_paid_at_the_gateway_is_recorded_as_paid_not_closed(
    worker: Worker, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    order = shop.order(expires_in=600)
    shop.confirm(shop.pay(order), notify=False)
    clock.advance(timedelta(minutes=11))
    worker.run_jobs_once()
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert books.violations(database) == []


def test_a_payment_whose_notification_never_came_is_found_paid_by_active_query(
    worker: Worker, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    order = shop.order()
    payment = shop.pay(order)
    shop.confirm(payment, notify=False)
    assert worker.run_jobs_once()["query_silent_payments"] == 0  # too young to ask about
    clock.advance(timedelta(seconds=61))
    assert worker.run_jobs_once()["query_silent_payments"] == 1
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert len(books.entries(database, kind="payment_captured")) == 1


def test_active_query_backs_off_while_the_gateway_has_no_news(
    worker: Worker, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    payment = shop.pay(shop.order(expires_in=7200))
    clock.advance(timedelta(seconds=61))
    for _ in range(6):  # three minutes of runs, every 30 s
        worker.run_jobs_once()
        clock.advance(timedelta(seconds=30))
    with database.session_scope(read_only=True) as session:
        attempts = session.scalar(select(Payment.query_attempts).where(Payment.id == payment["id"]))
    # Asked at +0 s, +30 s and +90 s: each wait doubles (30 s, 60 s, then 120 s).
    assert attempts == 3


def test_abandoned_attempts_are_closed_at_the_gateway_and_a_late_capture_is_recorded(
    worker: Worker, shop: Shop, database: Database
) -> None:
    order = shop.order()
    first, second, third = shop.pay(order), shop.pay(order), shop.pay(order)
    shop.confirm(first)
    shop.confirm(third, notify=False)  # the buyer paid a second time before the close
    assert worker.run_jobs_once()["close_abandoned_attempts"] == 2
    late = shop.client.post(f"/sandbox/test/payments/{second['id']}/confirm", json={})
    assert late.json()["code"] == "trade_closed"
    duplicate = shop.get(f"/v1/payments/{third['id']}")
    assert duplicate["status"] == "succeeded"
    assert duplicate["is_duplicate"] is True
    assert worker.run_jobs_once()["close_abandoned_attempts"] == 0
    assert books.violations(database) == []


def test_a_capture_that_does_not_fit_its_attempt_stops_no_other_attempts_close(
    app: FastAPI,
    worker: Worker,
    shop: Shop,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: the close job recorded what a gateway reported outside any guard, so
    one attempt's capture of another amount (or trade) aborted the round for every other
    abandoned attempt. Now it is left for the next try and staff are told once."""
    order = shop.order()
    odd, other, paid = shop.pay(order), shop.pay(order), shop.pay(order)
    shop.confirm(paid)
    channel = app.state.channel_registry.adapter("test")
    real_close = channel.close_payment
    wrong_amount = PaymentQueryResult(status=ChannelStatus.SUCCEEDED, amount=Money(1, "CNY"))
    asked: list[str] = []

    def close_payment(out_trade_no: str, *, gateway_trade_no: str | None = None) -> object:
        asked.append(out_trade_no)
        if out_trade_no == odd["id"]:
            return wrong_amount
        return real_close(out_trade_no, gateway_trade_no=gateway_trade_no)

    monkeypatch.setattr(channel, "close_payment", close_payment)
    assert worker.run_jobs_once()["close_abandoned_attempts"] == 1
    assert (_still_watched(database, odd["id"]), _still_watched(database, other["id"])) == (
        True,
        False,
    )
    clock.advance(timedelta(minutes=5))
    assert worker.run_jobs_once()["close_abandoned_attempts"] == 0
    assert asked.count(odd["id"]) == 2  # asked again, the same answer
    assert _still_watched(database, odd["id"])
    with database.session_scope(read_only=True) as session:
        kinds = session.scalars(select(Alert.kind)).all()
    assert kinds == ["gateway_capture_not_recorded"]  # once, though asked twice
    assert shop.get(f"/v1/payments/{odd['id']}")["status"] == "closed"
    assert books.violations(database) == []


def _gateway_cannot_close_unopened_trades(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test gateway closes as Alipay does an unscanned QR code: nothing to close yet, so
    not closed (the code still makes a trade when scanned); a paid trade is reported paid."""
    channel = app.state.channel_registry.adapter("test")

    def close_payment(out_trade_no: str, *, gateway_trade_no: str | None = None) -> object:
        found = channel.query_payment(out_trade_no)
        paid = found.status is ChannelStatus.SUCCEEDED
        return found if paid else PaymentQueryResult(status=ChannelStatus.PENDING)

    monkeypatch.setattr(channel, "close_payment", close_payment)


def _still_watched(database: Database, payment_id: str) -> bool:
    with database.session_scope(read_only=True) as session:
        return bool(
            session.scalar(select(Payment.needs_gateway_close).where(Payment.id == payment_id))
        )


def test_an_attempt_the_gateway_cannot_close_yet_is_watched_and_a_late_payment_found(
    app: FastAPI,
    worker: Worker,
    shop: Shop,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The buyer opened two attempts and paid one; the other's QR code, not closable, is paid
    later and its notification lost: the close job finds it and the money is owed back."""
    _gateway_cannot_close_unopened_trades(app, monkeypatch)
    order = shop.order(expires_in=1800)
    paid, abandoned = shop.pay(order), shop.pay(order)
    shop.confirm(paid)
    worker.run_jobs_once()
    assert _still_watched(database, abandoned["id"])

    shop.confirm(abandoned, notify=False)  # scanned and paid after the close was tried
    clock.advance(timedelta(seconds=31))
    worker.run_jobs_once()

    late = shop.get(f"/v1/payments/{abandoned['id']}")
    assert (late["status"], late["is_duplicate"]) == ("succeeded", True)
    assert not _still_watched(database, abandoned["id"])
    assert books.violations(database) == []


def test_an_attempt_the_gateway_cannot_close_is_let_go_once_its_expiry_there_has_passed(
    app: FastAPI,
    worker: Worker,
    shop: Shop,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _gateway_cannot_close_unopened_trades(app, monkeypatch)
    order = shop.order(expires_in=600)
    paid, abandoned = shop.pay(order), shop.pay(order)
    shop.confirm(paid)
    for _ in range(8):  # 10 min of expiry and 10 more of grace, in ever longer steps
        worker.run_jobs_once()
        assert _still_watched(database, abandoned["id"])
        clock.advance(timedelta(minutes=2))
    clock.advance(timedelta(minutes=5))  # past expiry + grace: the last try is due
    worker.run_jobs_once()

    assert not _still_watched(database, abandoned["id"])
    assert shop.get(f"/v1/payments/{abandoned['id']}")["status"] == "closed"


def test_an_unpaid_order_gets_one_reminder_shortly_before_it_expires(
    worker: Worker, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    order = shop.order(expires_in=1800)
    paid = shop.order(expires_in=1800)
    shop.confirm(shop.pay(paid))
    assert worker.run_jobs_once()["remind_unpaid_orders"] == 0
    clock.advance(timedelta(minutes=26))
    assert worker.run_jobs_once()["remind_unpaid_orders"] == 1
    assert worker.run_jobs_once()["remind_unpaid_orders"] == 0
    [reminder] = books.events(database, "order.payment_reminder")
    assert reminder["data"]["object"]["id"] == order["id"]


def test_expired_idempotency_keys_are_purged(
    worker: Worker, shop: Shop, clock: FrozenClock
) -> None:
    headers = {**shop.app.headers, "Idempotency-Key": "k-1"}
    shop.client.post(
        "/v1/products",
        json={"title": "x", "kind": "course", "prices": [{"amount": 1, "currency": "CNY"}]},
        headers=headers,
    )
    assert worker.run_jobs_once()["purge_idempotency_keys"] == 0
    clock.advance(timedelta(hours=25))
    assert worker.run_jobs_once()["purge_idempotency_keys"] == 1
