"""Alipay's wire values ↔ knowpay's: yuan strings exactly, trade_status as Alipay means it,
Beijing times, notification fields and the `success` answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from knowpay.channels.alipay import transformers as t
from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import ChannelStatus
from knowpay.kit.money import Money


@pytest.mark.parametrize(
    ("text", "minor"),
    [("0.01", 1), ("99.00", 9900), ("99", 9900), ("88.8", 8880), ("100000000.00", 10**10)],
)
def test_yuan_strings_convert_exactly(text: str, minor: int) -> None:
    assert t.from_yuan(text) == Money(minor, "CNY")


@pytest.mark.parametrize(
    ("minor", "text"), [(1, "0.01"), (10, "0.10"), (9900, "99.00"), (123456789, "1234567.89")]
)
def test_money_becomes_two_decimal_yuan(minor: int, text: str) -> None:
    assert t.to_yuan(Money(minor, "CNY")) == text


def test_a_float_sum_that_would_drift_stays_exact() -> None:
    # 0.1 + 0.2 != 0.3 in binary floating point; in fen it is 10 + 20 == 30.
    assert t.from_yuan("0.10") + t.from_yuan("0.20") == t.from_yuan("0.30")


@pytest.mark.parametrize("text", ["88.888", "1e2", "abc", "", "1.2.3", " ", "0x10", None])
def test_malformed_amounts_are_protocol_errors(text: str | None) -> None:
    with pytest.raises(ProtocolError):
        t.from_yuan(text)


@pytest.mark.parametrize("amount", [Money(0, "CNY"), Money(10**10 + 1, "CNY"), Money(100, "USD")])
def test_amounts_alipay_cannot_charge_are_refused(amount: Money) -> None:
    with pytest.raises(ProtocolError):
        t.to_yuan(amount)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("WAIT_BUYER_PAY", ChannelStatus.PENDING),
        ("TRADE_SUCCESS", ChannelStatus.SUCCEEDED),
        ("TRADE_FINISHED", ChannelStatus.SUCCEEDED),
        ("TRADE_CLOSED", ChannelStatus.CLOSED),
        ("TRADE_PENDING_SOMETHING_NEW", ChannelStatus.PENDING),
        (None, ChannelStatus.PENDING),
    ],
)
def test_trade_status_maps_as_alipay_means_it(status: str | None, expected: ChannelStatus) -> None:
    assert t.trade_status(status) is expected


def test_beijing_times_round_trip_to_utc() -> None:
    moment = datetime(2026, 1, 1, 16, 30, 5, tzinfo=UTC)
    assert t.beijing_time(moment) == "2026-01-02 00:30:05"
    assert t.parse_beijing_time("2026-01-02 00:30:05") == moment
    assert t.parse_beijing_time(None) is None
    with pytest.raises(ProtocolError):
        t.parse_beijing_time("2026/01/02")


def _notice(**fields: str) -> dict[str, str]:
    base = {
        "notify_id": "n1",
        "notify_type": "trade_status_sync",
        "out_trade_no": "pay_1",
        "trade_no": "2026010122001400000000000001",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "99.00",
        "seller_id": "2088000000000001",
        "gmt_payment": "2026-01-01 20:00:00",
    }
    return {**base, **fields}


def test_a_payment_notification_becomes_a_succeeded_payment() -> None:
    note = t.notification(_notice())
    assert (note.kind, note.external_id, note.out_trade_no) == ("payment", "n1", "pay_1")
    assert note.status is ChannelStatus.SUCCEEDED
    assert note.amount == Money(9900, "CNY")
    assert note.paid_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert note.merchant_id == "2088000000000001"


def test_closed_and_finished_trades_and_refunds_are_told_apart() -> None:
    assert t.notification(_notice(trade_status="TRADE_CLOSED")).status is ChannelStatus.CLOSED
    assert t.notification(_notice(trade_status="TRADE_FINISHED")).status is ChannelStatus.SUCCEEDED
    partial = t.notification(_notice(out_biz_no="rf_1", refund_fee="10.00"))
    full = t.notification(_notice(trade_status="TRADE_CLOSED", out_biz_no="rf_2"))
    for refund, number in ((partial, "rf_1"), (full, "rf_2")):
        assert (refund.kind, refund.status, refund.out_refund_no) == (
            "refund",
            ChannelStatus.SUCCEEDED,
            number,
        )
        assert refund.amount is None  # Alipay's refund_fee is cumulative, not this refund
        assert refund.trade_amount == Money(9900, "CNY")  # the payment's, checked by the core


@pytest.mark.parametrize(
    "fields",
    [
        {"notify_id": ""},
        {"out_trade_no": ""},
        {"notify_type": "something_else"},
        {"total_amount": "12.345"},
        {"gmt_payment": "yesterday"},
    ],
)
def test_malformed_notifications_are_protocol_errors(fields: dict[str, str]) -> None:
    with pytest.raises(ProtocolError):
        t.notification(_notice(**fields))


def test_query_and_refund_query_answers() -> None:
    paid = t.query_result(
        {"trade_status": "TRADE_SUCCESS", "total_amount": "0.01", "trade_no": "T1",
         "send_pay_date": "2026-01-01 08:00:00"}
    )  # fmt: skip
    assert (paid.status, paid.amount, paid.gateway_trade_no) == (
        ChannelStatus.SUCCEEDED,
        Money(1, "CNY"),
        "T1",
    )
    assert paid.paid_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    with pytest.raises(ProtocolError):
        t.query_result({"trade_status": "TRADE_SUCCESS"})
    assert t.refund_query_result({"code": "10000"}, "T1").status is ChannelStatus.PENDING
    found = t.refund_query_result({"refund_amount": "1.00", "trade_no": "T1"}, "T1")
    assert (found.status, found.gateway_refund_no) == (ChannelStatus.SUCCEEDED, "T1")
    processing = t.refund_query_result(
        {"refund_amount": "1.00", "refund_status": "PROCESSING"}, None
    )
    assert processing.status is ChannelStatus.PENDING


@pytest.mark.parametrize(
    "answer", [{"refund_amount": "1.00", "trade_no": "T2"}, {"refund_amount": "0.50"}]
)
def test_a_refund_query_answer_of_another_trade_or_amount_is_not_believed(
    answer: dict[str, str],
) -> None:
    """Found by an independent Alipay implementation: a signed refund query answer was taken
    as this refund's success whatever trade or amount it named."""
    with pytest.raises(ProtocolError):
        t.refund_query_result(answer, "T1", Money(100, "CNY"))
    mine = {"refund_amount": "1.00", "trade_no": "T1"}
    assert t.refund_query_result(mine, "T1", Money(100, "CNY")).status is ChannelStatus.SUCCEEDED


def test_subjects_avoid_the_characters_alipay_forbids_and_fit_its_length() -> None:
    assert t.subject("A/B = C & D") == "A／B ＝ C ＆ D"
    assert t.subject("  两门\n课程  ") == "两门 课程"
    assert len(t.subject("课" * 300)) == 256
    assert t.subject("   ") == "-"


def test_the_answer_alipay_expects_is_exactly_success() -> None:
    assert t.ack(True).body == b"success"
    assert t.ack(True).status_code == 200
    assert t.ack(False).body != b"success"
