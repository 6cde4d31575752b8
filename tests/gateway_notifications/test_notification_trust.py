"""A verified notification is trusted only for what its gateway may speak of: its own
channels' payments and refunds, at their own amounts (SPEC: "trusted only after its
signature, amount, currency and merchant identity check out")."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from knowpay.alerts.models import Alert
from knowpay.channels.base import Channel
from knowpay.channels.errors import SignatureProbe
from knowpay.channels.types import ChannelStatus, Notification, NotificationAck, RefundResult
from knowpay.gateway_notifications import service
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.payments import service as payments
from knowpay.payments.models import Payment
from tests import books
from tests.builders import Builders, Shop
from tests.gateway_notifications.test_notify_regressions import (
    _event,
    _signed_test_notification,
)


@dataclass
class VerifiedBy:
    """A gateway's adapter whose signature check passed and parsed `note`: what the core
    does next is the question here, not how each gateway signs."""

    gateway: str
    note: Notification
    name: str = "stub"

    def verify_and_parse_notification(self, headers: Any, body: bytes) -> Notification:
        return self.note

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return NotificationAck(200 if accepted else 400, b"", "text/plain")


def _receive(database: Database, clock: FrozenClock, gateway: str, note: Notification) -> str:
    channel = cast(Channel, VerifiedBy(gateway, note))
    with database.session_scope() as session:
        handled = service.receive(session, channel, {}, b"{}", clock.now())
    return handled.outcome


def _notified(app: FastAPI, client: TestClient, event: dict[str, object]) -> tuple[int, Any]:
    """What /notify/test answers the event, signed as the test gateway signs."""
    headers, body = _signed_test_notification(app, event)
    response = client.post("/notify/test", content=body, headers=headers)
    return response.status_code, response.json()


def _alert_kinds(database: Database) -> list[str]:
    with database.session_scope(read_only=True) as session:
        return list(session.scalars(select(Alert.kind).order_by(Alert.created_at)).all())


def _capture(
    payment_id: str,
    status: ChannelStatus = ChannelStatus.SUCCEEDED,
    gateway_trade_no: str = "2026112622001400000000000001",
) -> Notification:
    return Notification(
        kind="payment",
        external_id=f"evt_{status.value}_{payment_id}",
        out_trade_no=payment_id,
        status=status,
        gateway_trade_no=gateway_trade_no,
        amount=Money(9900, "CNY"),
    )


def test_a_gateway_cannot_pay_an_attempt_another_gateway_runs(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop = Shop(build)
    order = shop.order()
    payment = shop.pay(order)  # on the test channel
    assert _receive(database, clock, "alipay", _capture(payment["id"])) == "unknown_trade"
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "pending"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert books.entries(database) == []
    assert _alert_kinds(database) == ["notification_unknown_trade"]
    # Its own gateway still can, naming the trade it opened.
    own = _capture(payment["id"], gateway_trade_no=payment["gateway_trade_no"])
    assert _receive(database, clock, "test", own) == "processed"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"


def test_a_gateway_cannot_fail_an_attempt_another_gateway_runs(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop = Shop(build)
    payment = shop.pay(shop.order())
    failed = _capture(payment["id"], ChannelStatus.FAILED)
    assert _receive(database, clock, "wechatpay", failed) == "unknown_trade"
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "pending"


def _refunded(shop: Shop) -> tuple[dict[str, Any], dict[str, Any]]:
    payment = shop.pay(order := shop.order())
    shop.confirm(payment)
    created = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 3000, "reason": "other"},
        headers=shop.app.headers,
    )
    assert created.status_code == 201, created.text
    return payment, created.json()


def _refund_note(refund: dict[str, Any], out_trade_no: str) -> Notification:
    return Notification(
        kind="refund",
        external_id=f"evt_refund_{refund['id']}_{out_trade_no}",
        out_trade_no=out_trade_no,
        status=ChannelStatus.SUCCEEDED,
        amount=Money(3000, "CNY"),
        out_refund_no=refund["id"],  # a first attempt's number is the refund's id
    )


def test_a_refund_notice_from_another_gateway_is_no_refund_of_ours(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    payment, refund = _refunded(Shop(build))
    note = _refund_note(refund, payment["id"])
    assert _receive(database, clock, "stripe", note) == "unknown_trade"
    assert _alert_kinds(database) == ["notification_unknown_trade"]


def test_a_refund_notice_naming_another_trade_is_rejected(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    _, refund = _refunded(Shop(build))
    note = _refund_note(refund, "pay_other0000000000000000000")
    assert _receive(database, clock, "test", note) == "rejected"
    assert _alert_kinds(database) == ["notification_rejected"]


def test_a_refund_notice_stating_another_payment_total_is_rejected(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """Found by a refund audit: a signed WeChat Pay REFUND.SUCCESS whose amount.total was one
    fen more than the payment was accepted; only amount.refund was compared."""
    payment, refund = _refunded(Shop(build))
    paid = Money(payment["amount"], payment["currency"])
    tampered = replace(
        _refund_note(refund, payment["id"]), trade_amount=Money(paid.amount_minor + 1, "CNY")
    )
    assert _receive(database, clock, "test", tampered) == "rejected"
    assert _alert_kinds(database) == ["notification_rejected"]
    honest = replace(
        _refund_note(refund, payment["id"]), external_id="evt_refund_honest", trade_amount=paid
    )
    assert _receive(database, clock, "test", honest) == "processed"


@pytest.mark.parametrize("stated", [Money(2999, "CNY"), Money(3000, "USD")])
def test_a_refund_notice_stating_another_refund_amount_or_currency_is_rejected(
    build: Builders, database: Database, clock: FrozenClock, stated: Money
) -> None:
    payment, refund = _refunded(Shop(build))
    tampered = replace(_refund_note(refund, payment["id"]), amount=stated)
    assert _receive(database, clock, "test", tampered) == "rejected"
    assert _alert_kinds(database) == ["notification_rejected"]


def test_a_capture_of_another_amount_for_a_paid_attempt_is_rejected(
    app: FastAPI, client: TestClient, build: Builders, database: Database
) -> None:
    shop = Shop(build)
    payment = shop.pay(order := shop.order())
    shop.confirm(payment)
    entries_before = len(books.entries(database))
    event = _event(id="evt_late_other_amount", out_trade_no=payment["id"], amount="1.00")
    assert _notified(app, client, event) == (400, {"received": False})
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert len(books.entries(database)) == entries_before
    assert _alert_kinds(database) == ["notification_rejected"]


def test_a_gateway_trade_number_another_attempt_carries_is_left_off_and_alerted(
    app: FastAPI, client: TestClient, build: Builders, database: Database
) -> None:
    """Real gateways number each trade once; a simulator that does not must not make a 500,
    nor stop the money the notification reports from being recorded."""
    shop = Shop(build)
    first, second = shop.pay(shop.order()), shop.pay(order := shop.order())
    taken = "test_trade_0001"
    with database.session_scope() as session:
        # The test gateway numbers its trades when it opens them; Alipay's precreate and
        # WeChat Pay's prepay do not: the number comes with the notification.
        session.execute(update(Payment).values(gateway_trade_no=None))
    for number, payment in enumerate((first, second)):
        event = _event(id=f"evt_{number}", out_trade_no=payment["id"], gateway_trade_no=taken)
        assert _notified(app, client, event) == (200, {"received": True})
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    with database.session_scope(read_only=True) as session:
        rows = session.execute(select(Payment.id, Payment.gateway_trade_no)).all()
        numbers = dict(rows)
    assert numbers == {first["id"]: taken, second["id"]: None}
    assert _alert_kinds(database) == ["gateway_trade_no_reused"]
    assert books.violations(database) == []


@pytest.mark.postgres_only
def test_two_attempts_given_one_trade_number_at_the_same_moment_are_both_recorded(
    app: FastAPI, client: TestClient, build: Builders, database: Database, clock: FrozenClock
) -> None:
    """The second notification checks the number before the first commits it, then waits on
    the unique index and is refused there: dispatched once more, it sees the holder and goes
    the alerted way, where it was a 500 (and a retry by the gateway) before."""
    if database.dialect != "postgresql":
        pytest.skip("two transactions meeting on a unique index: PostgreSQL")
    shop = Shop(build)
    first, second = shop.pay(shop.order()), shop.pay(order := shop.order())
    taken = "test_trade_0002"
    with database.session_scope() as session:
        session.execute(update(Payment).values(gateway_trade_no=None))
    headers, body = _signed_test_notification(
        app, _event(id="evt_second", out_trade_no=second["id"], gateway_trade_no=taken)
    )
    answers: list[Any] = []
    with database.session_scope() as session:
        payments.record_capture(
            session, first["id"], Money(9900, "CNY"), taken, clock.now(), gateway="test"
        )
        session.flush()  # the first attempt holds the number, not yet committed
        notifying = threading.Thread(
            target=lambda: answers.append(
                client.post("/notify/test", content=body, headers=headers)
            )
        )
        notifying.start()
        books.wait_for_a_row_lock_wait(database, "the second notification")
    notifying.join(timeout=30)
    [answer] = answers
    assert (answer.status_code, answer.json()) == (200, {"received": True})
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    with database.session_scope(read_only=True) as session:
        numbers = dict(session.execute(select(Payment.id, Payment.gateway_trade_no)).all())
    assert numbers == {first["id"]: taken, second["id"]: None}
    assert _alert_kinds(database) == ["gateway_trade_no_reused"]
    assert books.violations(database) == []


def test_a_refund_the_gateway_fails_after_it_succeeded_is_brought_to_staff_once(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """Stripe: a card refund can fail after it succeeded (the payer's bank sends it back);
    the buyer has not got the money although the books say so."""
    shop = Shop(build)
    payment, refund = _refunded(shop)
    assert refund["status"] == "succeeded"
    for event in ("refund.failed", "refund.updated"):
        note = replace(
            _refund_note(refund, payment["id"]),
            external_id=f"evt_{event}",
            status=ChannelStatus.FAILED,
        )
        assert _receive(database, clock, "test", note) == "processed"  # acknowledged
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "succeeded"
    assert _alert_kinds(database) == ["refund_reversed"]


@dataclass
class Probed(VerifiedBy):
    """An adapter that recognises the gateway's own signature probe."""

    def verify_and_parse_notification(self, headers: Any, body: bytes) -> Notification:
        raise SignatureProbe("the gateway's signature probe")


def test_a_gateways_signature_probe_is_refused_without_an_error_alert(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    channel = cast(Channel, Probed("wechatpay", _capture("pay_x")))
    with database.session_scope() as session:
        handled = service.receive(session, channel, {}, b"{}", clock.now())
    assert (handled.outcome, handled.ack.status_code) == ("rejected", 400)
    with database.session_scope(read_only=True) as session:
        alerts = session.execute(select(Alert.kind, Alert.severity)).all()
    assert [tuple(alert) for alert in alerts] == [("notification_rejected", "info")]


def test_a_failure_notice_fails_the_attempt_and_one_needing_attention_is_alerted_too(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    shop = Shop(build)
    failed, flagged = shop.pay(shop.order()), shop.pay(shop.order())
    assert _receive(database, clock, "test", _capture(failed["id"], ChannelStatus.FAILED)) == (
        "processed"
    )
    assert shop.get(f"/v1/payments/{failed['id']}")["status"] == "failed"
    note = replace(
        _capture(flagged["id"], ChannelStatus.FAILED), attention="The gateway took it back."
    )
    assert _receive(database, clock, "test", note) == "processed"
    assert shop.get(f"/v1/payments/{flagged['id']}")["status"] == "failed"
    assert _alert_kinds(database) == ["payment_needs_action"]


def test_a_closed_trade_notice_closes_a_pending_attempt_and_leaves_a_paid_one(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """A gateway that says the trade closed unpaid (Alipay TRADE_CLOSED, a canceled
    PaymentIntent) ends the attempt, as its query would; the order stays payable. A paid
    attempt stays paid (Alipay says TRADE_CLOSED of a trade it refunded in full), and another
    gateway cannot close an attempt it does not run."""
    shop = Shop(build)
    order = shop.order()
    pending = shop.pay(order)
    closed = _capture(pending["id"], ChannelStatus.CLOSED)
    assert _receive(database, clock, "wechatpay", closed) == "unknown_trade"
    assert shop.get(f"/v1/payments/{pending['id']}")["status"] == "pending"
    assert _receive(database, clock, "test", closed) == "processed"
    assert shop.get(f"/v1/payments/{pending['id']}")["status"] == "closed"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"

    paid = shop.pay(order)
    shop.confirm(paid)
    later = replace(_capture(paid["id"], ChannelStatus.CLOSED), external_id="evt_refunded_in_full")
    assert _receive(database, clock, "test", later) == "processed"
    assert shop.get(f"/v1/payments/{paid['id']}")["status"] == "succeeded"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert books.violations(database) == []


def test_a_capture_keeps_the_gateways_payment_time_beside_knowpays(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """Found by an independent Alipay implementation: `gmt_payment` was parsed and dropped, so
    a late notification left no trace of when the payer paid."""
    shop = Shop(build)
    payment = shop.pay(shop.order())
    paid_at = clock.now() - timedelta(hours=3)
    note = _capture(payment["id"], gateway_trade_no=payment["gateway_trade_no"])
    assert _receive(database, clock, "test", replace(note, paid_at=paid_at)) == "processed"
    recorded = shop.get(f"/v1/payments/{payment['id']}")
    assert datetime.fromisoformat(recorded["gateway_paid_at"]) == paid_at
    assert datetime.fromisoformat(recorded["succeeded_at"]) == clock.now()


def test_a_refund_failed_by_notification_keeps_the_gateways_reason(
    build: Builders, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the international-gateways audit: Stripe's refund.failed carries
    failure_reason (expired_or_canceled_card …) and docs/gateways/stripe.md maps it to the
    refund's failure_code, but a refund failed by a webhook was recorded as `refund_failed`
    with no message: only the refund query's path kept the gateway's reason."""
    from knowpay.channels.errors import ChannelUnavailable

    shop = Shop(build)
    payment = shop.pay(order := shop.order())
    shop.confirm(payment)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]

    def unreachable(_request: object) -> object:
        raise ChannelUnavailable("connection refused")

    monkeypatch.setattr(channel, "refund", unreachable)
    created = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 3000, "reason": "other"},
        headers=shop.app.headers,
    )
    assert created.status_code == 201, created.text
    refund = created.json()
    assert refund["status"] == "processing"
    note = replace(
        _refund_note(refund, payment["id"]),
        status=ChannelStatus.FAILED,
        failure_code="expired_or_canceled_card",
        failure_message="Stripe's refund is failed",
    )
    assert _receive(database, clock, "test", note) == "processed"
    after = shop.get(f"/v1/refunds/{refund['id']}")
    assert (after["status"], after["failure_code"], after["failure_message"]) == (
        "failed",
        "expired_or_canceled_card",
        "Stripe's refund is failed",
    )
    assert books.violations(database) == []


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        # PayPal's approval webhook whose capture is refused failed the attempt as
        # `gateway_failed`: the adapter's code was lost between notification and core.
        (("INSTRUMENT_DECLINED", "PayPal's capture is DECLINED"),) * 2,
        # A NUL or a lone surrogate (valid JSON, refused by PostgreSQL's text columns) is
        # escaped: the reason is only read by people, and refusing the whole signed notice
        # would leave the attempt pending for a failure the gateway did report.
        (("DECLINED\x00", "card \ud800 refused"), ("DECLINED\\x00", "card \\ud800 refused")),
    ],
)
def test_a_payment_failed_by_notification_keeps_the_gateways_reason(
    build: Builders,
    database: Database,
    clock: FrozenClock,
    sent: tuple[str, str],
    stored: tuple[str, str],
) -> None:
    shop = Shop(build)
    payment = shop.pay(shop.order())
    code, message = sent
    note = replace(
        _capture(payment["id"], ChannelStatus.FAILED), failure_code=code, failure_message=message
    )
    assert _receive(database, clock, "test", note) == "processed"
    after = shop.get(f"/v1/payments/{payment['id']}")
    assert (after["status"], after["failure_code"], after["failure_message"]) == (
        "failed",
        *stored,
    )


def test_a_capture_naming_another_trade_does_not_pay_an_attempt_that_has_its_own(
    app: FastAPI, client: TestClient, build: Builders, database: Database
) -> None:
    """Stripe and PayPal number a trade when it opens (the test gateway too): a signed event
    for another PaymentIntent or order that carries our out_trade_no is not this attempt's
    money, so it must not pay the order (found by the international-gateways audit, F2)."""
    shop = Shop(build)
    payment = shop.pay(order := shop.order())
    other = _event(id="evt_other_trade", out_trade_no=payment["id"], gateway_trade_no="pi_other")
    assert _notified(app, client, other) == (400, {"received": False})
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert books.entries(database, kind="payment_captured") == []
    assert _alert_kinds(database) == ["notification_rejected"]
    assert shop.confirm(payment)["notification"] == "processed"  # its own trade still pays
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert books.violations(database) == []


def test_a_capture_naming_another_trade_after_the_attempt_paid_is_thanked_and_alerted_once(
    app: FastAPI, client: TestClient, build: Builders, database: Database
) -> None:
    """Once per other trade: a third trade after the second is money staff must hear of too."""
    shop = Shop(build)
    payment = shop.pay(order := shop.order())
    shop.confirm(payment)
    for number, trade in enumerate(("pi_other", "pi_other", "pi_third")):
        event = _event(id=f"evt_other_{number}", out_trade_no=payment["id"], gateway_trade_no=trade)
        assert _notified(app, client, event) == (200, {"received": True})
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert len(books.entries(database, kind="payment_captured")) == 1
    assert books.entries(database, kind="duplicate_captured") == []
    assert _alert_kinds(database) == ["gateway_trade_mismatch"] * 2
    with database.session_scope(read_only=True) as session:
        messages = session.scalars(select(Alert.message)).all()
    assert sorted(trade for trade in ("pi_other", "pi_third") for m in messages if trade in m) == [
        "pi_other",
        "pi_third",
    ]


def test_a_refund_notice_naming_another_gateway_refund_is_thanked_alerted_once_and_not_applied(
    build: Builders, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signed refund notice carrying our refund number but another refund's id at the
    gateway (a second refund made with our number) is not our refund's outcome: the gateway
    is thanked, so it stops sending, and staff hear of it once (F2, refund half)."""
    shop = Shop(build)
    channel = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    accepted = RefundResult(ChannelStatus.PENDING, gateway_refund_no="rf_ours")
    monkeypatch.setattr(channel, "refund", lambda _request: accepted)
    payment, refund = _refunded(shop)
    assert refund["status"] == "processing"
    sent = (("refund.updated", ChannelStatus.SUCCEEDED), ("refund.failed", ChannelStatus.FAILED))
    for event, status in sent:
        note = replace(
            _refund_note(refund, payment["id"]),
            external_id=f"evt_{event}",
            status=status,
            gateway_refund_no="rf_other",
        )
        assert _receive(database, clock, "test", note) == "processed"  # acknowledged
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "processing"
    assert _alert_kinds(database) == ["gateway_refund_mismatch"]
    rows = [n for n in books.notifications(database) if n.external_id.startswith("evt_refund.")]
    assert [(n.outcome, n.payment_id) for n in rows] == [("processed", payment["id"])] * 2
    assert all(n.reason and "rf_other" in n.reason and "rf_ours" in n.reason for n in rows)
    assert books.entries(database, kind="refund_succeeded") == []
    assert books.violations(database) == []
