"""Stripe wire ↔ knowpay: amounts in Stripe's units (zero-decimal, three-decimal and the
special cases), statuses, events and bill lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from knowpay.channels.errors import ChannelDeclined, ProtocolError
from knowpay.channels.stripe import transformers as t
from knowpay.channels.types import ChannelStatus
from knowpay.kit.money import Money

# Amounts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "stripe_amount"),
    [
        (Money(1499, "USD"), 1499),  # cents
        (Money(50, "EUR"), 50),
        (Money(1500, "JPY"), 1500),  # zero-decimal: yen as is
        (Money(10000, "KRW"), 10000),
        (Money(250000, "VND"), 250000),
        (Money(990, "CLP"), 990),
        (Money(5, "ISK"), 500),  # whole krónur written with two decimals
        (Money(3000, "UGX"), 300000),
        (Money(17500, "HUF"), 17500),  # HUF and TWD are charged with two decimals
        (Money(3000, "TWD"), 3000),
        (Money(5120, "KWD"), 5120),  # thousandths ending in 0
        (Money(999, "CNY"), 999),
    ],
)
def test_amounts_go_to_stripe_in_its_units_and_come_back_exactly(
    money: Money, stripe_amount: int
) -> None:
    assert t.to_stripe_amount(money) == stripe_amount
    assert t.from_stripe_amount(stripe_amount, money.currency.lower()) == money


def test_an_amount_stripe_cannot_write_is_declined_before_any_call() -> None:
    with pytest.raises(ChannelDeclined) as kwd:
        t.to_stripe_amount(Money(5124, "KWD"))  # last digit must be 0
    assert kwd.value.code == "amount_not_representable"
    with pytest.raises(ChannelDeclined) as too_big:
        t.to_stripe_amount(Money(100_000_000, "JPY"))
    assert too_big.value.code == "amount_too_large"
    assert t.to_stripe_amount(Money(99_999_999, "JPY")) == 99_999_999
    with pytest.raises(ChannelDeclined):
        t.to_stripe_amount(Money(1_000_000, "ISK"))  # 100 000 000 in Stripe's units
    with pytest.raises(ChannelDeclined, match="positive"):
        t.to_stripe_amount(Money(0, "USD"))


def test_an_amount_from_stripe_that_is_not_whole_minor_units_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        t.from_stripe_amount(550, "isk")  # 5.50 ISK cannot exist
    with pytest.raises(ProtocolError):
        t.from_stripe_amount("1000", "usd")
    with pytest.raises(ProtocolError):
        t.from_stripe_amount(True, "usd")
    with pytest.raises(ProtocolError):
        t.from_stripe_amount(100, "zzz")


def test_the_profile_limits_are_stripes_in_knowpays_minor_units() -> None:
    minimum, maximum = t.amount_limits(["USD", "GBP", "JPY", "HKD", "ISK", "KWD"])
    assert minimum == {"USD": 50, "GBP": 30, "JPY": 50, "HKD": 400, "ISK": 1, "KWD": 10}
    assert maximum == {
        "USD": 99_999_999,
        "GBP": 99_999_999,
        "JPY": 99_999_999,
        "HKD": 99_999_999,
        "ISK": 999_999,
        "KWD": 99_999_999,
    }


# Statuses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", ChannelStatus.SUCCEEDED),
        ("canceled", ChannelStatus.CLOSED),
        ("requires_payment_method", ChannelStatus.PENDING),
        ("requires_confirmation", ChannelStatus.PENDING),
        ("requires_action", ChannelStatus.PENDING),
        ("processing", ChannelStatus.PENDING),
        ("requires_capture", ChannelStatus.PENDING),
        ("something_new", ChannelStatus.PENDING),
        (None, ChannelStatus.PENDING),
    ],
)
def test_payment_intent_statuses(status: str | None, expected: ChannelStatus) -> None:
    assert t.intent_status(status) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", ChannelStatus.SUCCEEDED),
        ("pending", ChannelStatus.PENDING),
        ("requires_action", ChannelStatus.PENDING),
        ("failed", ChannelStatus.FAILED),
        ("canceled", ChannelStatus.FAILED),
        ("new_status", ChannelStatus.PENDING),
    ],
)
def test_refund_statuses(status: str, expected: ChannelStatus) -> None:
    assert t.refund_status(status) is expected


def intent(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "pi_123",
        "object": "payment_intent",
        "amount": 1500,
        "amount_received": 0,
        "currency": "jpy",
        "metadata": {"out_trade_no": "pay_1"},
        "status": "requires_payment_method",
        "latest_charge": None,
        "last_payment_error": None,
    }
    return {**base, **fields}


def test_a_failed_attempt_is_pending_news_not_an_end() -> None:
    error = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
             "message": "Your card has insufficient funds."}  # fmt: skip
    result = t.query_result(intent(last_payment_error=error))
    assert result.status is ChannelStatus.PENDING
    assert (result.failure_code, result.failure_message) == (
        "insufficient_funds",
        "Your card has insufficient funds.",
    )


def test_a_succeeded_intent_reports_what_was_received_and_when() -> None:
    charge = {"id": "ch_1", "object": "charge", "created": 1767268800}
    result = t.query_result(intent(status="succeeded", amount_received=1500, latest_charge=charge))
    assert result.status is ChannelStatus.SUCCEEDED
    assert result.amount == Money(1500, "JPY")
    assert result.paid_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert result.gateway_trade_no == "pi_123"


def test_an_answer_about_another_trade_or_other_money_is_refused() -> None:
    t.check_intent(intent(), "pay_1", Money(1500, "JPY"))
    with pytest.raises(ProtocolError, match="asked about pay_2"):
        t.check_intent(intent(), "pay_2", None)
    with pytest.raises(ProtocolError, match="asked for"):
        t.check_intent(intent(), "pay_1", Money(1600, "JPY"))
    with pytest.raises(ProtocolError):
        t.check_intent(intent(object="refund"), "pay_1", None)


def test_refund_reasons_map_to_stripes_enum_and_never_to_fraudulent() -> None:
    assert t.refund_reason("duplicate_purchase") == "duplicate"
    assert t.refund_reason("accidental_purchase") == "requested_by_customer"
    assert t.refund_reason("other") is None
    assert "fraudulent" not in {t.refund_reason(r) for r in ("fraud", "fraudulent", "chargeback")}


# Events --------------------------------------------------------------------------------------


def event(event_type: str, obj: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": 1767268800,
        "livemode": False,
        "data": {"object": obj},
        **fields,
    }


def test_payment_intent_succeeded_is_a_capture_with_the_amount_received() -> None:
    note = t.notification(
        event("payment_intent.succeeded", intent(status="succeeded", amount_received=1500))
    )
    assert (note.kind, note.external_id, note.out_trade_no, note.status) == (
        "payment",
        "evt_1",
        "pay_1",
        ChannelStatus.SUCCEEDED,
    )
    assert (note.amount, note.gateway_trade_no) == (Money(1500, "JPY"), "pi_123")
    assert note.paid_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_payment_failed_is_pending_and_canceled_is_closed() -> None:
    failed = t.notification(event("payment_intent.payment_failed", intent()))
    assert (failed.status, failed.paid_at) == (ChannelStatus.PENDING, None)
    canceled = t.notification(event("payment_intent.canceled", intent(status="canceled")))
    assert canceled.status is ChannelStatus.CLOSED


def test_refund_events_name_our_refund_and_its_own_amount() -> None:
    refund = {"id": "re_9", "object": "refund", "amount": 500, "currency": "usd",
              "status": "succeeded", "payment_intent": "pi_123",
              "metadata": {"out_trade_no": "pay_1", "out_refund_no": "rfd_1"}}  # fmt: skip
    for event_type in ("refund.created", "refund.updated", "charge.refund.updated"):
        note = t.notification(event(event_type, refund))
        assert (note.kind, note.out_refund_no, note.gateway_refund_no, note.amount) == (
            "refund",
            "rfd_1",
            "re_9",
            Money(500, "USD"),
        )
        assert note.status is ChannelStatus.SUCCEEDED
    failed = t.notification(event("refund.failed", {**refund, "status": "failed"}))
    assert failed.status is ChannelStatus.FAILED


def test_a_failed_refund_event_carries_stripes_failure_reason() -> None:
    """docs/gateways/stripe.md: failed/canceled → failed, failure_code = failure_reason; the
    webhook's notification dropped it (only the refund query kept it)."""
    refund = {"id": "re_9", "object": "refund", "amount": 500, "currency": "usd",
              "status": "failed", "failure_reason": "expired_or_canceled_card",
              "payment_intent": "pi_123",
              "metadata": {"out_trade_no": "pay_1", "out_refund_no": "rfd_1"}}  # fmt: skip
    note = t.notification(event("refund.failed", refund))
    assert (note.status, note.failure_code) == (ChannelStatus.FAILED, "expired_or_canceled_card")
    assert note.failure_message
    succeeded = t.notification(event("refund.updated", {**refund, "status": "succeeded"}))
    assert (succeeded.failure_code, succeeded.failure_message) == (None, None)


def test_unrelated_events_become_notes_that_change_nothing() -> None:
    charge = {"id": "ch_1", "object": "charge", "metadata": {"out_trade_no": "pay_1"}}
    note = t.notification(event("charge.succeeded", charge))
    assert (note.kind, note.status, note.out_trade_no, note.amount) == (
        "payment",
        ChannelStatus.PENDING,
        "pay_1",
        None,
    )
    payout = t.notification(event("payout.paid", {"id": "po_1", "object": "payout"}))
    assert (payout.status, payout.out_trade_no) == (ChannelStatus.PENDING, "")


@pytest.mark.parametrize(
    "bad",
    [
        {"object": "list"},
        event("payment_intent.succeeded", {"id": "ch_1", "object": "charge"}),
        event("refund.updated", intent()),
        {**event("charge.succeeded", {}), "data": None},
        {**event("charge.succeeded", {}), "id": ""},
    ],
    ids=[
        "not-an-event",
        "intent-event-with-a-charge",
        "refund-event-with-an-intent",
        "no-data",
        "no-id",
    ],
)
def test_malformed_events_are_protocol_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        t.notification(bad)


def test_the_answer_is_200_received_or_400() -> None:
    assert (t.ack(True).status_code, t.ack(True).body) == (200, b'{"received": true}')
    assert t.ack(True).content_type == "application/json"
    assert t.ack(False).status_code == 400


# Bill lines ----------------------------------------------------------------------------------


def test_bill_lines_use_the_source_amount_and_skip_fees_and_payouts() -> None:
    charge = {"id": "ch_1", "object": "charge", "amount": 1500, "currency": "jpy",
              "payment_intent": "pi_123", "metadata": {"out_trade_no": "pay_1"}}  # fmt: skip
    refund = {"id": "re_1", "object": "refund", "amount": 400, "currency": "jpy",
              "payment_intent": "pi_123", "metadata": {"out_trade_no": "pay_1"}}  # fmt: skip
    paid = t.bill_line({"id": "txn_1", "type": "charge", "created": 1767268800,
                        "amount": 980, "currency": "usd", "source": charge})  # fmt: skip
    assert paid is not None
    assert (paid.kind, paid.amount, paid.out_trade_no, paid.gateway_trade_no) == (
        "payment",
        Money(1500, "JPY"),  # what the payer was charged, not the converted settlement
        "pay_1",
        "pi_123",
    )
    back = t.bill_line({"id": "txn_2", "type": "refund", "created": 1767268800,
                        "amount": -400, "currency": "jpy", "source": refund})  # fmt: skip
    assert back is not None
    assert (back.kind, back.amount) == ("refund", Money(400, "JPY"))
    assert t.bill_line({"id": "txn_3", "type": "payout", "created": 1, "amount": -1}) is None
    bare = t.bill_line({"id": "txn_4", "type": "refund", "created": 1767268800, "amount": -400,
                        "currency": "jpy", "source": "re_1"})  # fmt: skip
    assert bare is not None
    assert (bare.amount, bare.gateway_trade_no, bare.out_trade_no) == (
        Money(400, "JPY"),
        "re_1",
        "",
    )
