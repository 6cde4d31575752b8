"""UnionPay wire ↔ knowpay: orderId and txnTime from knowpay's ids, fen, payTimeout, the
synchronous answer's raw `k=v&…` text, notifications, the answer UnionPay expects, and the
payload of knowpay's front-form page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import ChannelStatus
from knowpay.channels.unionpay import transformers as tf
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from tests.channels.unionpay import material

PAID_AT = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)  # 20:00 in Beijing


@pytest.mark.parametrize(
    ("reference", "order"),
    [
        ("pay_01jd3k0000000000000000000a", "payX01jd3k0000000000000000000a"),
        ("re_01jd3k0000000000000000000b-2", "reX01jd3k0000000000000000000bY2"),
        ("abcdefgh", "abcdefgh"),
    ],
)
def test_order_ids_map_both_ways(reference: str, order: str) -> None:
    assert tf.order_id(reference) == order
    assert tf.reference(order) == reference


def test_every_knowpay_id_maps_to_a_valid_order_id_and_back() -> None:
    for prefix in ("pay", "re"):
        for _ in range(50):
            reference = new_id(prefix)
            mapped = tf.order_id(reference)
            assert mapped.isalnum()
            assert 8 <= len(mapped) <= 40
            assert tf.reference(mapped) == reference
            assert tf.order_id(reference + "-12").isalnum()


@pytest.mark.parametrize("reference", ["Pay_01", "pay 01jd3k", "pay_01jd3k/0", "short", "x" * 41])
def test_what_cannot_be_an_order_id_is_refused(reference: str) -> None:
    with pytest.raises(ProtocolError):
        tf.order_id(reference)


@pytest.mark.parametrize("order", ["short", "pay_0123456789", "x" * 41, "支付0123456789"])
def test_an_order_id_unionpay_would_not_send_is_refused(order: str) -> None:
    with pytest.raises(ProtocolError):
        tf.reference(order)


def test_txn_time_is_the_ids_creation_time_in_beijing() -> None:
    reference = material.knowpay_id("pay", PAID_AT + timedelta(milliseconds=999))
    assert tf.created_at(reference) == PAID_AT
    assert tf.txn_time(reference) == "20260101200000"
    assert tf.txn_time(reference + "-3") == "20260101200000"  # a retried refund's number
    before = datetime.now(UTC).replace(microsecond=0)
    made = new_id("pay")  # knowpay's own generator, read back
    assert before <= tf.created_at(made) <= datetime.now(UTC)


@pytest.mark.parametrize("reference", ["pay_not_ours", "payment", "pay_01jd3kIIII"])
def test_an_id_without_a_creation_time_cannot_be_sent(reference: str) -> None:
    with pytest.raises(ProtocolError, match="creation time"):
        tf.txn_time(reference)


def test_pay_timeout_is_the_expiry_capped_at_the_pay_window() -> None:
    reference = material.knowpay_id("pay", PAID_AT)
    assert tf.pay_timeout(reference, PAID_AT + timedelta(minutes=30)) == "20260101203000"
    assert tf.pay_timeout(reference, PAID_AT + timedelta(days=7)) == "20260101220000"
    assert not tf.surely_expired(reference, PAID_AT + timedelta(hours=2))
    assert tf.surely_expired(reference, PAID_AT + timedelta(hours=2, minutes=2, seconds=1))


def test_amounts_are_integer_fen_in_cny() -> None:
    assert tf.to_fen(Money(9900, "CNY")) == "9900"
    assert tf.from_fen("9900", "156") == Money(9900, "CNY")
    assert tf.from_fen("1", None) == Money(1, "CNY")
    with pytest.raises(ProtocolError):
        tf.to_fen(Money(100, "USD"))
    for bad in (None, "", "99.00", "-1", "0100", "1e3"):
        with pytest.raises(ProtocolError):
            tf.from_fen(bad)
    with pytest.raises(ProtocolError, match="156"):
        tf.from_fen("100", "840")


def test_channel_type_and_risk_rate_info() -> None:
    assert tf.channel_type({}) == "07"
    assert tf.channel_type({"device": "mobile"}) == "08"
    assert tf.channel_type({"channel_type": "08"}) == "08"
    assert tf.risk_rate_info("Python {进阶} & more=") == "{commodityName=Python 进阶 more}"


def test_a_raw_answer_is_read_like_the_sdks_parse_q_string() -> None:
    cert = "-----BEGIN CERTIFICATE-----\r\nMIIB+/ab==\r\n-----END CERTIFICATE-----"
    text = (
        "accessType=0&respCode=00&respMsg=成功[0000000]&reqReserved={a=1&b=2}"
        f"&signPubKeyCert={cert}&signature=ab+c/d==&empty="
    )
    assert tf.parse_response(text) == {
        "accessType": "0",
        "respCode": "00",
        "respMsg": "成功[0000000]",
        "reqReserved": "{a=1&b=2}",
        "signPubKeyCert": cert,
        "signature": "ab+c/d==",  # not URL-decoded: a plus stays a plus
        "empty": "",
    }
    assert tf.parse_response("{a=1&b={c=[d&e]}}") == {"a": "1", "b": "{c=[d&e]}"}


@pytest.mark.parametrize("text", ["", "a=1&a=2", "a=1&&b=2", "=1", "a=1&b"])
def test_what_is_not_an_answer_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        tf.parse_response(text)


def _consume(**changes: str) -> dict[str, str]:
    fields = {
        "txnType": "01",
        "txnSubType": "01",
        "respCode": "00",
        "merId": material.MER_ID,
        "orderId": "payX01jd3k0000000000000000000a",
        "txnTime": "20260101200000",
        "txnAmt": "9900",
        "currencyCode": "156",
        "queryId": "761601011200000012345",
    }
    fields.update(changes)
    return fields


def test_a_consume_notification_is_a_payment() -> None:
    note = tf.notification(_consume())
    assert (note.kind, note.status, note.out_trade_no, note.amount) == (
        "payment",
        ChannelStatus.SUCCEEDED,
        "pay_01jd3k0000000000000000000a",
        Money(9900, "CNY"),
    )
    assert (note.external_id, note.gateway_trade_no, note.merchant_id) == (
        "761601011200000012345:01",
        "761601011200000012345",
        material.MER_ID,
    )
    assert tf.notification(_consume(respCode="A6")).status is ChannelStatus.SUCCEEDED
    assert tf.notification(_consume(respCode="03")).status is ChannelStatus.PENDING


def test_a_refund_notification_names_the_refund_and_the_payment() -> None:
    note = tf.notification(
        _consume(
            txnType="04",
            txnSubType="00",
            orderId="reX01jd3k0000000000000000000b",
            txnAmt="3000",
            queryId="761601011300000054321",
            origQryId="761601011200000012345",
            reqReserved="pay_01jd3k0000000000000000000a",
        )
    )
    assert (note.kind, note.status, note.out_refund_no, note.out_trade_no) == (
        "refund",
        ChannelStatus.SUCCEEDED,
        "re_01jd3k0000000000000000000b",
        "pay_01jd3k0000000000000000000a",
    )
    assert (note.amount, note.gateway_refund_no, note.gateway_trade_no, note.external_id) == (
        Money(3000, "CNY"),
        "761601011300000054321",
        "761601011200000012345",
        "761601011300000054321:04",
    )
    failed = tf.notification(_consume(txnType="04", respCode="01"))
    assert failed.status is ChannelStatus.FAILED


@pytest.mark.parametrize(
    "changes",
    [{"txnType": "31"}, {"queryId": ""}, {"orderId": ""}, {"txnAmt": "99.00"},
     {"currencyCode": "840"}],
)  # fmt: skip
def test_a_notification_knowpay_cannot_read_is_a_protocol_error(changes: dict[str, str]) -> None:
    with pytest.raises(ProtocolError):
        tf.notification(_consume(**changes))


def test_status_of_the_original_transaction() -> None:
    assert tf.original_status("00") is ChannelStatus.SUCCEEDED
    assert tf.original_status("A6") is ChannelStatus.SUCCEEDED
    for code in ("03", "04", "05", None, ""):
        assert tf.original_status(code) is ChannelStatus.PENDING
    assert tf.original_status("01") is ChannelStatus.FAILED


def test_the_answer_unionpay_expects() -> None:
    assert (tf.ack(True).status_code, tf.ack(True).body) == (200, b"ok")
    assert tf.ack(False).status_code != 200


def test_the_front_form_payload_round_trips_and_refuses_anything_else() -> None:
    fields = {
        "orderId": "payX01",
        "riskRateInfo": "{commodityName=课程 <b>&</b>}",
        "signature": "a+/=",
    }
    encoded = tf.encode_form(fields)
    assert not set(encoded) & set("=+/")
    assert tf.decode_form(encoded) == fields
    for bad in ("!!!", tf.encode_form({}), "WzFd", tf.encode_form({"a b": "x"})):
        with pytest.raises(ValueError, match=r"^f "):
            tf.decode_form(bad)


def test_a_failed_refund_notification_keeps_unionpays_code_and_message() -> None:
    """docs/refunds.md: a failed refund carries the gateway's code and message, as the
    synchronous refusal's RefundResult does, not a bare `refund_failed`."""
    failed = tf.notification(
        _consume(txnType="04", orderId="reX01jd3k0000000000000000000b", respCode="01",
                 respMsg="交易失败[1000001]", reqReserved="pay_01jd3k0000000000000000000a")
    )  # fmt: skip
    assert (failed.status, failed.failure_code, failed.failure_message) == (
        ChannelStatus.FAILED,
        "01",
        "交易失败[1000001]",
    )
    succeeded = tf.notification(_consume(txnType="04", orderId="reX01jd3k0000000000000000000b"))
    assert (succeeded.failure_code, succeeded.failure_message) == (None, None)
