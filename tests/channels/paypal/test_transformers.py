"""PayPal wire ↔ DTO: decimal strings per currency exponent, the status maps (a COMPLETED
order is not proof; only a capture is), webhook events, times and the acknowledgement."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from knowpay.channels.errors import ProtocolError
from knowpay.channels.paypal import transformers
from knowpay.channels.types import ChannelStatus
from knowpay.kit.money import Money


@pytest.mark.parametrize(
    ("amount", "value"),
    [
        (Money(8888, "USD"), "88.88"),
        (Money(1, "USD"), "0.01"),
        (Money(100, "EUR"), "1.00"),
        (Money(1000, "JPY"), "1000"),
        (Money(1, "JPY"), "1"),
        (Money(150000, "HUF"), "1500"),  # ISO gives HUF two decimals; PayPal takes none
        (Money(99900, "TWD"), "999"),
        (Money(123456789, "GBP"), "1234567.89"),
    ],
)
def test_amounts_are_decimal_strings_with_the_digits_paypal_takes(
    amount: Money, value: str
) -> None:
    assert transformers.to_value(amount) == value
    assert transformers.money({"currency_code": amount.currency, "value": value}) == amount


@pytest.mark.parametrize("amount", [Money(150050, "HUF"), Money(0, "USD"), Money(-100, "USD")])
def test_amounts_paypal_cannot_take_are_refused_before_sending(amount: Money) -> None:
    with pytest.raises(ProtocolError):
        transformers.to_value(amount)


def test_the_smallest_amounts_follow_paypals_decimals() -> None:
    assert transformers.minimum("USD") == 1
    assert transformers.minimum("JPY") == 1
    assert transformers.minimum("HUF") == 100


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"currency_code": "USD"},
        {"currency_code": "USD", "value": "1.001"},
        {"currency_code": "JPY", "value": "10.5"},
        {"currency_code": "USD", "value": 1.5},
        {"currency_code": "XXQ", "value": "1.00"},
    ],
)
def test_malformed_money_is_a_protocol_error(data: Any) -> None:
    with pytest.raises(ProtocolError):
        transformers.money(data)


def test_a_zero_decimal_amount_written_with_zeros_is_still_exact() -> None:
    assert transformers.money({"currency_code": "JPY", "value": "1000.00"}) == Money(1000, "JPY")


def _order(status: str, *captures: dict[str, Any], **unit: Any) -> dict[str, Any]:
    purchase_unit: dict[str, Any] = {
        "reference_id": "default",
        "invoice_id": "pay_1",
        "amount": {"currency_code": "USD", "value": "88.88"},
        **unit,
    }
    if captures:
        purchase_unit["payments"] = {"captures": list(captures)}
    return {"id": "5O190127TN364715T", "status": status, "purchase_units": [purchase_unit]}


def _capture(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "3C679366HH908993F",
        "status": status,
        "amount": {"currency_code": "USD", "value": "88.88"},
        "create_time": "2026-01-01T12:00:00Z",
        **fields,
    }


@pytest.mark.parametrize(
    ("order", "status"),
    [
        (_order("CREATED"), ChannelStatus.PENDING),
        (_order("PAYER_ACTION_REQUIRED"), ChannelStatus.PENDING),
        (_order("APPROVED"), ChannelStatus.PENDING),
        (_order("SAVED"), ChannelStatus.PENDING),
        (_order("VOIDED"), ChannelStatus.CLOSED),
        (_order("COMPLETED"), ChannelStatus.PENDING),  # completed, but no capture: no proof
        (_order("SOMETHING_NEW"), ChannelStatus.PENDING),
        (_order("COMPLETED", _capture("COMPLETED")), ChannelStatus.SUCCEEDED),
        (_order("COMPLETED", _capture("PARTIALLY_REFUNDED")), ChannelStatus.SUCCEEDED),
        (_order("COMPLETED", _capture("REFUNDED")), ChannelStatus.SUCCEEDED),
        (_order("COMPLETED", _capture("PENDING")), ChannelStatus.PENDING),
        (_order("COMPLETED", _capture("DECLINED")), ChannelStatus.FAILED),
        (_order("COMPLETED", _capture("FAILED")), ChannelStatus.FAILED),
        (_order("COMPLETED", _capture("UNHEARD_OF")), ChannelStatus.PENDING),
        (_order("COMPLETED", _capture("DECLINED"), _capture("PENDING")), ChannelStatus.PENDING),
        (_order("COMPLETED", _capture("DECLINED"), _capture("COMPLETED")), ChannelStatus.SUCCEEDED),
    ],
)
def test_only_a_paid_capture_is_a_payment(order: dict[str, Any], status: ChannelStatus) -> None:
    result = transformers.order_result(order)
    assert result.status is status
    assert result.gateway_trade_no == "5O190127TN364715T"  # the order id, never the capture's
    if status is ChannelStatus.SUCCEEDED:
        assert result.amount == Money(8888, "USD")
        assert result.paid_at == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_a_declined_capture_says_why() -> None:
    order = _order("COMPLETED", _capture("DECLINED", status_details={"reason": "BUYER_COMPLAINT"}))
    result = transformers.order_result(order)
    assert (result.status, result.failure_code) == (ChannelStatus.FAILED, "BUYER_COMPLAINT")


def test_the_paid_capture_is_what_a_refund_is_made_against() -> None:
    assert transformers.paid_capture_id(_order("COMPLETED", _capture("DECLINED"))) is None
    order = _order("COMPLETED", _capture("PARTIALLY_REFUNDED"))
    assert transformers.paid_capture_id(order) == "3C679366HH908993F"


def test_the_closed_mark_hides_nothing_of_the_payment() -> None:
    unit = {"custom_id": transformers.CLOSED_MARK + "pay_1"}
    assert transformers.is_closed(unit)
    assert transformers.out_trade_no_of(unit) == "pay_1"
    assert not transformers.is_closed({"custom_id": "pay_1"})
    assert transformers.out_trade_no_of({"invoice_id": "pay_2", "custom_id": "x"}) == "pay_2"


@pytest.mark.parametrize("rel", ["approve", "payer-action"])
def test_the_buyer_is_sent_to_the_approve_or_payer_action_link(rel: str) -> None:
    order = {
        "links": [
            {"href": "https://api-m.paypal.com/v2/checkout/orders/X", "rel": "self"},
            {"href": "https://www.paypal.com/checkoutnow?token=X", "rel": rel},
        ]
    }
    assert transformers.approval_url(order) == "https://www.paypal.com/checkoutnow?token=X"


def test_an_order_without_an_approval_link_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        transformers.approval_url({"links": [{"href": "https://x/self", "rel": "self"}]})


def _event(event_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "WH-58D329510W468432D-8HN650336L201105X",
        "event_version": "1.0",
        "create_time": "2026-01-01T12:00:01.000Z",
        "resource_type": "capture",
        "event_type": event_type,
        "resource": resource,
    }


CAPTURE = _capture(
    "COMPLETED",
    invoice_id="pay_1",
    custom_id="pay_1",
    supplementary_data={"related_ids": {"order_id": "5O190127TN364715T"}},
    payee={"merchant_id": "MERCHANT1"},
)


def test_a_completed_capture_event_pays_with_the_order_id_as_trade_number() -> None:
    note = transformers.capture_notification(_event("PAYMENT.CAPTURE.COMPLETED", CAPTURE))
    assert note.kind == "payment"
    assert note.external_id == "WH-58D329510W468432D-8HN650336L201105X"
    assert (note.out_trade_no, note.status) == ("pay_1", ChannelStatus.SUCCEEDED)
    assert note.gateway_trade_no == "5O190127TN364715T"
    assert note.amount == Money(8888, "USD")
    assert note.merchant_id == "MERCHANT1"


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("PAYMENT.CAPTURE.PENDING", ChannelStatus.PENDING),
        ("PAYMENT.CAPTURE.DENIED", ChannelStatus.FAILED),
        ("PAYMENT.CAPTURE.DECLINED", ChannelStatus.FAILED),
    ],
)
def test_pending_and_denied_capture_events(event_type: str, status: ChannelStatus) -> None:
    note = transformers.capture_notification(_event(event_type, CAPTURE))
    assert note.status is status
    assert note.paid_at is None


def test_a_capture_event_without_its_order_id_is_refused() -> None:
    resource = {k: v for k, v in CAPTURE.items() if k != "supplementary_data"}
    with pytest.raises(ProtocolError, match="order_id"):
        transformers.capture_notification(_event("PAYMENT.CAPTURE.COMPLETED", resource))


def test_a_refund_event_names_knowpays_refund_by_its_custom_id() -> None:
    refund = {
        "id": "1JU08902781691411",
        "status": "COMPLETED",
        "amount": {"currency_code": "USD", "value": "30.00"},
        "invoice_id": "pay_1",
        "custom_id": "rfd_1",
    }
    note = transformers.refund_notification(_event("PAYMENT.CAPTURE.REFUNDED", refund))
    assert note.kind == "refund"
    assert (note.out_trade_no, note.out_refund_no) == ("pay_1", "rfd_1")
    assert (note.status, note.gateway_refund_no) == (ChannelStatus.SUCCEEDED, "1JU08902781691411")
    assert note.amount == Money(3000, "USD")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id":"WH-1","event_type":"X"}',
        b'{"resource":{},"id":"WH-1"}',
        b'{"id":' + b"1" * 5000 + b"}",  # more digits than int() converts: a ValueError
    ],
)
def test_a_body_that_is_not_an_event_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        transformers.parse_event(body)


def test_an_event_parses_from_its_raw_bytes() -> None:
    event = _event("PAYMENT.CAPTURE.COMPLETED", CAPTURE)
    assert transformers.parse_event(json.dumps(event).encode())["id"] == event["id"]


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T12:00:00Z",
        "2026-01-01T12:00:00.000Z",
        "2026-01-01T12:00:00+0000",
        "2026-01-01T20:00:00+08:00",
        "2026-01-01T04:00:00-0800",
    ],
)
def test_paypal_times_in_every_form_paypal_writes(text: str) -> None:
    assert transformers.parse_time(text) == datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-01-01T12:00:00", "yesterday"])
def test_a_time_without_an_offset_is_refused(text: str) -> None:
    with pytest.raises(ProtocolError):
        transformers.parse_time(text)


def test_the_acknowledgement_is_any_2xx_and_a_refusal_is_retried() -> None:
    assert transformers.ack(True).status_code == 200
    assert transformers.ack(False).status_code == 400


def test_failed_refund_and_denied_capture_events_carry_paypals_reason() -> None:
    """A refund failed (or a capture denied) by webhook lost PayPal's reason on the way to the
    core (recorded as `refund_failed` / `gateway_failed`); the query's path kept it."""
    refund = {
        "id": "1JU08902781691411",
        "status": "FAILED",
        "status_details": {"reason": "ECHECK"},
        "amount": {"currency_code": "USD", "value": "30.00"},
        "invoice_id": "pay_1",
        "custom_id": "rfd_1",
    }
    note = transformers.refund_notification(_event("PAYMENT.REFUND.FAILED", refund))
    assert (note.status, note.failure_code) == (ChannelStatus.FAILED, "ECHECK")
    denied = {**CAPTURE, "status": "DECLINED", "status_details": {"reason": "BUYER_COMPLAINT"}}
    note = transformers.capture_notification(_event("PAYMENT.CAPTURE.DENIED", denied))
    assert (note.status, note.failure_code) == (ChannelStatus.FAILED, "BUYER_COMPLAINT")
    assert note.failure_message
