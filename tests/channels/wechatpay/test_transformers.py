"""Wire ↔ DTO: fen ↔ Money, trade and refund states as WeChat means them, error codes,
callbacks and the answer WeChat expects."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import ChannelStatus, CreatePaymentRequest, RefundRequest
from knowpay.channels.wechatpay import transformers as t
from knowpay.kit.money import Money
from tests.channels.wechatpay.material import APPID, MCHID, transaction


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("SUCCESS", ChannelStatus.SUCCEEDED),
        ("REFUND", ChannelStatus.SUCCEEDED),
        ("NOTPAY", ChannelStatus.PENDING),
        ("USERPAYING", ChannelStatus.PENDING),
        ("CLOSED", ChannelStatus.CLOSED),
        ("REVOKED", ChannelStatus.CLOSED),
        ("PAYERROR", ChannelStatus.FAILED),
        ("SOMETHING_NEW", ChannelStatus.PENDING),
        ("", ChannelStatus.PENDING),
    ],
)
def test_trade_states_map_as_wechat_means_them(state: str, status: ChannelStatus) -> None:
    assert t.trade_status(state) is status


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("SUCCESS", ChannelStatus.SUCCEEDED),
        ("PROCESSING", ChannelStatus.PENDING),
        ("ABNORMAL", ChannelStatus.PENDING),
        ("CLOSED", ChannelStatus.FAILED),
        ("NEW", ChannelStatus.PENDING),
    ],
)
def test_refund_states(state: str, status: ChannelStatus) -> None:
    assert t.refund_status(state) is status


def test_a_query_answer_becomes_a_query_result_in_money() -> None:
    result = t.query_result(transaction())
    assert result.status is ChannelStatus.SUCCEEDED
    assert result.amount == Money(9900, "CNY")
    assert result.gateway_trade_no == "4200000000202601010000000001"
    assert result.paid_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    failed = t.query_result(transaction(trade_state="PAYERROR", trade_state_desc="支付失败"))
    assert (failed.status, failed.failure_code, failed.failure_message) == (
        ChannelStatus.FAILED,
        "PAYERROR",
        "支付失败",
    )


@pytest.mark.parametrize("total", [99.0, "9900", True, None])
def test_amounts_must_be_integer_fen(total: object) -> None:
    with pytest.raises(ProtocolError):
        t.money_of({"total": total, "currency": "CNY"})


def test_fen_are_minor_units_and_only_cny_is_charged() -> None:
    assert t.to_fen(Money(1, "CNY")) == 1
    assert t.money_of({"total": 1}) == Money(1, "CNY")
    with pytest.raises(ProtocolError):
        t.to_fen(Money(100, "USD"))


def test_times_go_out_in_beijing_time_and_come_back_in_utc() -> None:
    moment = datetime(2026, 1, 1, 12, 0, 5, 123000, tzinfo=UTC)
    assert t.rfc3339(moment) == "2026-01-01T20:00:05+08:00"
    assert t.parse_time("2026-01-01T20:00:05+08:00") == moment.replace(microsecond=0)
    assert t.parse_time("") is None
    with pytest.raises(ProtocolError):
        t.parse_time("yesterday")


def _request(**options: object) -> CreatePaymentRequest:
    return CreatePaymentRequest(
        out_trade_no="pay_01jd3k0000000000000000000a",
        amount=Money(9900, "CNY"),
        subject="Python 数据分析 30 讲" * 10,
        notify_url="https://pay.example.com/notify/wechatpay",
        expires_at=datetime(2026, 1, 1, 12, 30, tzinfo=UTC),
        client_ip="203.0.113.9",
        options=dict(options),
    )


def test_prepay_bodies_per_trade_type() -> None:
    native = t.prepay_body("native", _request(), APPID, MCHID)
    assert native["amount"] == {"total": 9900, "currency": "CNY"}
    assert native["time_expire"] == "2026-01-01T20:30:00+08:00"
    # 127 bytes of UTF-8 at most, cut between characters (数 is 3 bytes).
    assert len(native["description"].encode()) <= 127
    described = native["description"].encode()
    assert _request().subject.encode().startswith(described)
    assert len(described) > 127 - 3
    assert "payer" not in native
    assert "scene_info" not in native
    jsapi = t.prepay_body("jsapi", _request(openid="oUpF8u"), APPID, MCHID)
    assert jsapi["payer"] == {"openid": "oUpF8u"}
    h5 = t.prepay_body("h5", _request(), APPID, MCHID)
    assert h5["scene_info"] == {"payer_client_ip": "203.0.113.9", "h5_info": {"type": "Wap"}}
    assert json.loads(t.dumps(h5)) == h5


def test_a_refund_body_carries_out_refund_no_and_fen() -> None:
    request = RefundRequest(
        out_trade_no="pay_1",
        out_refund_no="re_1",
        amount=Money(3000, "CNY"),
        total=Money(9900, "CNY"),
        reason="no_longer_needed",
        notify_url="https://pay.example.com/notify/wechatpay",
    )
    body = t.refund_body(request)
    assert body["out_refund_no"] == "re_1"
    assert body["amount"] == {"refund": 3000, "total": 9900, "currency": "CNY"}
    # The payer reads the reason in WeChat's refund message: words, not knowpay's code.
    assert body["reason"] == "no longer needed"
    assert t.refund_body(replace(request, note="不想学了\x00\r\n"))["reason"] == "不想学了"
    worded = t.refund_body(replace(request, note="课程内容与介绍不符，" * 5))
    assert worded["reason"] == "课程内容与介绍不符，" * 2 + "课程内容与介"  # 78 of 80 bytes


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (500, "SYSTEM_ERROR", t.ErrorKind.RETRY),
        (500, "SYSTEMERROR", t.ErrorKind.RETRY),
        (429, "FREQUENCY_LIMITED", t.ErrorKind.RETRY),
        (502, "HTTP_502", t.ErrorKind.RETRY),
        (400, "ORDERPAID", t.ErrorKind.ALREADY_PAID),
        (400, "ORDER_PAID", t.ErrorKind.ALREADY_PAID),
        (404, "ORDER_NOT_EXIST", t.ErrorKind.NOT_FOUND),
        (404, "ORDERNOTEXIST", t.ErrorKind.NOT_FOUND),
        (404, "RESOURCE_NOT_EXISTS", t.ErrorKind.NOT_FOUND),
        (401, "SIGN_ERROR", t.ErrorKind.DECLINED),
        (400, "PARAM_ERROR", t.ErrorKind.DECLINED),
        (403, "NOT_ENOUGH", t.ErrorKind.DECLINED),
        (403, "NOTENOUGH", t.ErrorKind.DECLINED),
        (400, "APPID_MCHID_NOT_MATCH", t.ErrorKind.DECLINED),
    ],
)
def test_error_codes_are_classified(status: int, code: str, kind: t.ErrorKind) -> None:
    raw = json.dumps({"code": code, "message": "…"}).encode()
    assert t.error_of(status, raw).kind is kind


def test_an_error_without_json_keeps_its_status() -> None:
    for raw in (b"<html>Bad Gateway</html>", b"[" * 100_000, b'{"code": ' + b"1" * 5000 + b"}"):
        error = t.error_of(502, raw)
        assert (error.code, error.kind) == ("HTTP_502", t.ErrorKind.RETRY)


def _envelope(event_type: str = "TRANSACTION.SUCCESS") -> dict[str, object]:
    return {"id": "EV-1", "event_type": event_type, "resource_type": "encrypt-resource"}


def test_a_payment_callback_becomes_a_payment_notification() -> None:
    note = t.notification_of(_envelope(), transaction(), appid=APPID, mchid=MCHID)
    assert (note.kind, note.external_id, note.status) == (
        "payment",
        "EV-1",
        ChannelStatus.SUCCEEDED,
    )
    assert note.out_trade_no == "pay_01jd3k0000000000000000000a"
    assert note.amount == Money(9900, "CNY")
    assert note.merchant_id == MCHID


def test_a_refund_callback_becomes_a_refund_notification() -> None:
    resource = {
        "mchid": MCHID,
        "out_trade_no": "pay_1",
        "transaction_id": "4200000000202601010000000001",
        "out_refund_no": "re_1",
        "refund_id": "50000000382019052709732678859",
        "refund_status": "SUCCESS",
        "success_time": "2026-01-02T10:00:00+08:00",
        "amount": {"total": 9900, "refund": 3000, "payer_total": 9900, "payer_refund": 3000},
    }
    note = t.notification_of(_envelope("REFUND.SUCCESS"), resource, appid=APPID, mchid=MCHID)
    assert (note.kind, note.out_refund_no, note.amount) == ("refund", "re_1", Money(3000, "CNY"))
    assert note.status is ChannelStatus.SUCCEEDED
    assert note.gateway_refund_no == "50000000382019052709732678859"
    assert note.trade_amount == Money(9900, "CNY")  # checked against the payment's amount


def test_an_abnormal_refund_is_pending_and_says_what_staff_must_do() -> None:
    """REFUND.ABNORMAL: the money could not reach the payer; WeChat Pay waits for the
    merchant (the abnormal-refund API or the merchant platform)."""
    resource = {
        "mchid": MCHID,
        "out_trade_no": "pay_1",
        "out_refund_no": "re_1",
        "refund_id": "50000000382019052709732678859",
        "refund_status": "ABNORMAL",
        "amount": {"total": 9900, "refund": 3000, "payer_total": 9900, "payer_refund": 3000},
    }
    note = t.notification_of(_envelope("REFUND.ABNORMAL"), resource, appid=APPID, mchid=MCHID)
    assert note.status is ChannelStatus.PENDING
    assert note.attention is not None
    assert "re_1 (ABNORMAL)" in note.attention
    queried = t.refund_result({**resource, "status": "ABNORMAL"})
    assert (queried.status, queried.attention) == (ChannelStatus.PENDING, note.attention)
    assert t.refund_result({**resource, "status": "SUCCESS"}).attention is None


@pytest.mark.parametrize(
    ("resource", "event_type", "reason"),
    [
        (transaction(mchid="1900000000"), "TRANSACTION.SUCCESS", "mchid"),
        (transaction(appid="wx0000000000000000"), "TRANSACTION.SUCCESS", "appid"),
        (transaction(out_trade_no=""), "TRANSACTION.SUCCESS", "out_trade_no"),
        (transaction(amount={"total": "99.00"}), "TRANSACTION.SUCCESS", "amount"),
        (transaction(), "COUPON.USE", "event_type"),
    ],
)
def test_callbacks_for_someone_else_or_off_protocol_are_refused(
    resource: dict[str, object], event_type: str, reason: str
) -> None:
    with pytest.raises(ProtocolError, match=reason):
        t.notification_of(_envelope(event_type), resource, appid=APPID, mchid=MCHID)


def test_the_answer_is_204_or_a_4xx_with_code_fail() -> None:
    accepted = t.notification_ack(True)
    assert (accepted.status_code, accepted.body, accepted.content_type) == (204, b"", "")
    refused = t.notification_ack(False)
    assert refused.status_code == 400
    assert json.loads(refused.body)["code"] == "FAIL"
    assert refused.content_type == "application/json"
