"""The UnionPay adapter against a stand-in for UnionPay written here (httpx.MockTransport):
it checks the merchant's signature as the specification words it and answers in UnionPay's
raw `k=v&…` text, signed with certificates made in material.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.types import (
    ChannelStatus,
    CreatePaymentRequest,
    RefundRequest,
)
from knowpay.channels.unionpay import UnionPayChannel, build_channels
from knowpay.channels.unionpay import transformers as tf
from knowpay.channels.unionpay.client import UnionPayClient, UnverifiedResponse
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings, load_settings
from knowpay.kit.money import Money
from tests.channels.unionpay import material
from tests.channels.unionpay.material import NOW

CREATED = NOW - timedelta(minutes=1)
PAYMENT = material.knowpay_id("pay", CREATED)
REFUND = material.knowpay_id("re", NOW, "000000000000000b")
QUERY_ID = "761601011200000012345"
NOTIFY_URL = "https://knowpay.example/notify/unionpay"
Answer = Callable[[dict[str, str]], "dict[str, str] | httpx.Response"]


@dataclass
class FakeUnionPay:
    """Checks each request's signature and answers with the next scripted answer."""

    answers: list[Answer] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        fields = dict(parse_qsl(request.content.decode("ascii"), keep_blank_values=True))
        assert fields["signature"] == material.spec_signature(fields, material.merchant().key)
        assert fields["certId"] == "68759585097"
        self.requests.append((urlsplit(str(request.url)).path.rsplit("/", 1)[-1], fields))
        answer = self.answers.pop(0)(fields)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, text=raw(answer))


def raw(message: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in message.items())


def signed(request: dict[str, str], **fields: str) -> dict[str, str]:
    """UnionPay's answer to `request`: its key fields echoed, `fields`, signed."""
    echoed = {k: request[k] for k in ("version", "encoding", "txnType", "txnSubType", "merId",
                                      "orderId", "txnTime", "bizType", "accessType")}  # fmt: skip
    return material.from_unionpay({**echoed, "signMethod": "01", **fields})


def paid(request: dict[str, str]) -> dict[str, str]:
    return signed(request, respCode="00", respMsg="成功[0000000]", origRespCode="00",
                  origRespMsg="成功[0000000]", queryId=QUERY_ID, txnAmt="9900",
                  currencyCode="156")  # fmt: skip


def answered(code: str, **fields: str) -> Answer:
    return lambda request: signed(request, respCode=code, respMsg="…", **fields)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def gateway() -> FakeUnionPay:
    return FakeUnionPay()


@pytest.fixture
def channel(gateway: FakeUnionPay, clock: FrozenClock) -> Iterator[UnionPayChannel]:
    client = UnionPayClient(material.settings(), clock, transport=httpx.MockTransport(gateway))
    yield UnionPayChannel(client, "https://knowpay.example/forms/unionpay", clock)
    client.close()


# Paying --------------------------------------------------------------------------------


def _course(out_trade_no: str, expires_at: datetime, **fields: Any) -> CreatePaymentRequest:
    """A ¥99.00 course's consume request."""
    return CreatePaymentRequest(
        out_trade_no=out_trade_no,
        amount=Money(9900, "CNY"),
        subject="Python 进阶",
        notify_url=NOTIFY_URL,
        expires_at=expires_at,
        **fields,
    )


@pytest.mark.parametrize(("options", "channel_type"), [({}, "07"), ({"device": "mobile"}, "08")])
def test_the_front_consume_is_signed_and_handed_to_knowpays_form_page(
    channel: UnionPayChannel, options: dict[str, str], channel_type: str
) -> None:
    request = _course(
        PAYMENT,
        CREATED + timedelta(minutes=30),
        return_url=f"https://knowpay.example/return/{PAYMENT}",
        options=options,
    )
    result = channel.create_payment(request)
    assert (result.status, result.action.type) == (ChannelStatus.PENDING, "redirect")
    url = urlsplit(result.action.url or "")
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://knowpay.example/forms/unionpay"
    fields = tf.decode_form(dict(parse_qsl(url.query))["f"])
    assert fields["signature"] == material.spec_signature(fields, material.merchant().key)
    assert {k: v for k, v in fields.items() if k != "signature"} == {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "certId": "68759585097",
        "txnType": "01",
        "txnSubType": "01",
        "bizType": "000201",
        "accessType": "0",
        "channelType": channel_type,
        "merId": material.MER_ID,
        "orderId": PAYMENT.replace("_", "X"),
        "txnTime": "20260101195900",
        "txnAmt": "9900",
        "currencyCode": "156",
        "payTimeout": "20260101202900",
        "frontUrl": f"https://knowpay.example/return/{PAYMENT}",
        "backUrl": NOTIFY_URL,
        "riskRateInfo": "{commodityName=Python 进阶}",
    }


def test_a_consume_whose_pay_window_has_passed_is_declined_not_handed_out(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    """An attempt opened long after its id was made (held for risk review, released hours
    later) would carry a payTimeout already past: UnionPay refuses such a form, so the payer
    must not get it; the attempt is declined and the buyer starts another."""
    made = NOW - tf.MAX_PAY_WINDOW - timedelta(minutes=1)
    late = material.knowpay_id("pay", made)
    request = _course(
        late, NOW + timedelta(days=1), return_url=f"https://knowpay.example/return/{late}"
    )
    with pytest.raises(ChannelDeclined) as declined:
        channel.create_payment(request)
    assert declined.value.code == "pay_window_passed"
    assert gateway.requests == []
    # Still inside its window: handed out, with a payTimeout that has not passed.
    recent = material.knowpay_id("pay", NOW - tf.MAX_PAY_WINDOW + timedelta(minutes=5))
    result = channel.create_payment(_course(recent, NOW + timedelta(days=1)))
    fields = tf.decode_form(dict(parse_qsl(urlsplit(result.action.url or "").query))["f"])
    assert tf.parse_beijing_time(fields["payTimeout"]) == NOW + timedelta(minutes=5)


def test_the_profile_is_cny_on_desktop_and_mobile(channel: UnionPayChannel) -> None:
    assert channel.profile.currencies == {"CNY"}
    assert channel.profile.devices == {"desktop", "mobile"}
    assert (channel.name, channel.gateway) == ("unionpay", "unionpay")


# Querying ------------------------------------------------------------------------------


def test_a_paid_consume_is_read_from_the_signed_query_answer(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [paid]
    result = channel.query_payment(PAYMENT)
    assert (result.status, result.amount, result.gateway_trade_no) == (
        ChannelStatus.SUCCEEDED,
        Money(9900, "CNY"),
        QUERY_ID,
    )
    [(endpoint, fields)] = gateway.requests
    assert endpoint == "queryTrans.do"
    assert (fields["txnType"], fields["txnSubType"], fields["orderId"], fields["txnTime"]) == (
        "00",
        "00",
        PAYMENT.replace("_", "X"),
        "20260101195900",
    )


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (answered("00", origRespCode="05", origRespMsg="受理"), ChannelStatus.PENDING),
        (answered("00", origRespCode="01", origRespMsg="交易失败"), ChannelStatus.PENDING),
        (answered("03"), ChannelStatus.PENDING),
        (answered("34"), ChannelStatus.PENDING),
    ],
    ids=["in-doubt", "failed-within-pay-window", "query-timed-out", "not-found-within-pay-window"],
)
def test_query_statuses(
    channel: UnionPayChannel, gateway: FakeUnionPay, answer: Answer, status: ChannelStatus
) -> None:
    gateway.answers = [answer]
    assert channel.query_payment(PAYMENT).status is status


def test_no_such_transaction_is_closed_only_once_no_pay_timeout_can_run(
    channel: UnionPayChannel, gateway: FakeUnionPay, clock: FrozenClock
) -> None:
    gateway.answers = [answered("34")] * 3
    assert channel.close_payment(PAYMENT).status is ChannelStatus.PENDING
    clock.set(CREATED + tf.MAX_PAY_WINDOW + tf.CLOCK_GRACE)
    assert channel.close_payment(PAYMENT).status is ChannelStatus.PENDING
    clock.advance(timedelta(seconds=1))
    assert channel.close_payment(PAYMENT).status is ChannelStatus.CLOSED


def test_a_failed_consume_is_failed_only_once_no_pay_timeout_can_run(
    channel: UnionPayChannel, gateway: FakeUnionPay, clock: FrozenClock
) -> None:
    """Found by an independent UnionPay implementation: a query's failed origRespCode was
    final at once, though the payer may still pay the same front consume until payTimeout."""
    gateway.answers = [answered("00", origRespCode="01", origRespMsg="交易失败")] * 2
    assert channel.query_payment(PAYMENT).status is ChannelStatus.PENDING
    clock.set(CREATED + tf.MAX_PAY_WINDOW + tf.CLOCK_GRACE + timedelta(seconds=1))
    failed = channel.query_payment(PAYMENT)
    assert (failed.status, failed.failure_code) == (ChannelStatus.FAILED, "01")


def test_closing_a_paid_consume_reports_it_paid(
    channel: UnionPayChannel, gateway: FakeUnionPay, clock: FrozenClock
) -> None:
    clock.advance(timedelta(days=1))
    gateway.answers = [paid]
    assert channel.close_payment(PAYMENT).status is ChannelStatus.SUCCEEDED


def test_answers_that_are_not_unionpays_word_are_no_answer(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    impostor = material.hierarchy("impostor").leaf(key="impostor")
    gateway.answers = [
        lambda r: {**paid(r), "txnAmt": "1"},  # changed after signing
        lambda r: material.from_unionpay(
            {k: v for k, v in paid(r).items() if k not in ("signature", "signPubKeyCert")},
            impostor,
        ),
        lambda r: {k: v for k, v in paid(r).items() if k != "signature"},  # unsigned
        lambda r: paid({**r, "orderId": "payX01jd3k000000000000000009"}),  # another order
        lambda r: httpx.Response(200, text="<html>maintenance</html>"),
    ]
    for _ in range(5):
        with pytest.raises(ChannelUnavailable):
            channel.query_payment(PAYMENT)
    assert len(gateway.requests) == 5


def test_a_forged_answer_is_also_a_signature_error(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [lambda r: {**paid(r), "origRespCode": "00", "txnAmt": "1"}]
    with pytest.raises(UnverifiedResponse) as caught:
        channel.query_payment(PAYMENT)
    assert isinstance(caught.value, SignatureInvalid)


def test_server_errors_are_retried_and_busy_is_unavailable(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [lambda r: httpx.Response(503), lambda r: httpx.Response(502), paid]
    assert channel.query_payment(PAYMENT).status is ChannelStatus.SUCCEEDED
    assert len(gateway.requests) == 3
    gateway.answers = [answered("06")]
    with pytest.raises(ChannelUnavailable, match="06"):
        channel.query_payment(PAYMENT)


def test_a_refusal_of_the_request_itself_may_come_unsigned(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [lambda r: httpx.Response(200, text="respCode=11&respMsg=验证签名失败")]
    with pytest.raises(ChannelDeclined) as refused:
        channel.query_payment(PAYMENT)
    assert refused.value.code == "11"


# Refunds -------------------------------------------------------------------------------


def _refund(**changes: object) -> RefundRequest:
    fields: dict[str, object] = {
        "out_trade_no": PAYMENT,
        "out_refund_no": REFUND,
        "amount": Money(3000, "CNY"),
        "total": Money(9900, "CNY"),
        "reason": "退课",
        "notify_url": NOTIFY_URL,
        "gateway_trade_no": QUERY_ID,
    }
    fields.update(changes)
    return RefundRequest(**fields)  # type: ignore[arg-type]


def test_a_refund_is_accepted_as_pending_and_names_the_consume_by_its_query_id(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [answered("00", queryId="761601011300000054321", txnAmt="3000")]
    result = channel.refund(_refund())
    assert (result.status, result.gateway_refund_no) == (
        ChannelStatus.PENDING,
        "761601011300000054321",
    )
    [(endpoint, fields)] = gateway.requests
    assert endpoint == "backTransReq.do"
    sent = ("txnType", "txnSubType", "origQryId", "orderId", "txnTime", "txnAmt", "backUrl")
    assert {k: fields[k] for k in (*sent, "reqReserved")} == {
        "txnType": "04",
        "txnSubType": "00",
        "origQryId": QUERY_ID,
        "orderId": REFUND.replace("_", "X"),
        "txnTime": "20260101200000",
        "txnAmt": "3000",
        "backUrl": NOTIFY_URL,
        "reqReserved": PAYMENT,
    }


def test_a_refund_without_the_query_id_asks_for_it_first(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [paid, answered("00", queryId="761601011300000054321")]
    assert channel.refund(_refund(gateway_trade_no=None)).status is ChannelStatus.PENDING
    assert [e for e, _ in gateway.requests] == ["queryTrans.do", "backTransReq.do"]
    assert gateway.requests[1][1]["origQryId"] == QUERY_ID


def test_a_resent_refund_refused_as_a_duplicate_is_settled_by_a_query(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [
        answered("12"),
        answered("00", origRespCode="00", queryId="761601011300000054321"),
    ]
    result = channel.refund(_refund())
    assert (result.status, result.gateway_refund_no) == (
        ChannelStatus.SUCCEEDED,
        "761601011300000054321",
    )
    assert gateway.requests[1][1]["orderId"] == REFUND.replace("_", "X")


def test_a_refused_refund_fails_with_unionpays_code(
    channel: UnionPayChannel, gateway: FakeUnionPay
) -> None:
    gateway.answers = [answered("35")]
    result = channel.refund(_refund())
    assert (result.status, result.failure_code) == (ChannelStatus.FAILED, "35")
    gateway.answers = [answered("05")]
    assert channel.refund(_refund()).status is ChannelStatus.PENDING


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (answered("00", origRespCode="00", queryId="7616"), ChannelStatus.SUCCEEDED),
        (answered("00", origRespCode="05"), ChannelStatus.PENDING),
        (answered("00", origRespCode="01"), ChannelStatus.FAILED),
        (answered("34"), ChannelStatus.PENDING),
    ],
)
def test_refund_query_statuses(
    channel: UnionPayChannel, gateway: FakeUnionPay, answer: Answer, status: ChannelStatus
) -> None:
    gateway.answers = [answer]
    assert channel.query_refund(PAYMENT, REFUND).status is status
    assert gateway.requests[0][1]["orderId"] == REFUND.replace("_", "X")


# Notifications -------------------------------------------------------------------------


def _notice(**changes: str) -> dict[str, str]:
    fields = {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "01",
        "txnSubType": "01",
        "bizType": "000201",
        "accessType": "0",
        "merId": material.MER_ID,
        "orderId": PAYMENT.replace("_", "X"),
        "txnTime": "20260101195900",
        "txnAmt": "9900",
        "currencyCode": "156",
        "queryId": QUERY_ID,
        "respCode": "00",
        "respMsg": "成功[0000000]",
        "traceNo": "123456",
        "traceTime": "0101200001",
    }
    fields.update(changes)
    return fields


def _body(message: dict[str, str]) -> bytes:
    return urlencode(message).encode("ascii")


def test_a_signed_notification_is_parsed(channel: UnionPayChannel) -> None:
    note = channel.verify_and_parse_notification({}, _body(material.from_unionpay(_notice())))
    assert (note.kind, note.status, note.out_trade_no, note.amount, note.gateway_trade_no) == (
        "payment",
        ChannelStatus.SUCCEEDED,
        PAYMENT,
        Money(9900, "CNY"),
        QUERY_ID,
    )


@pytest.mark.parametrize(
    "message",
    [
        material.from_unionpay(_notice(), key=material.rsa_key("stranger")),
        material.from_unionpay(_notice(), material.hierarchy("impostor").leaf(key="impostor")),
        {**material.from_unionpay(_notice()), "txnAmt": "1"},
    ],
    ids=["forged-signature", "untrusted-ca", "tampered"],
)
def test_a_notification_that_is_not_unionpays_is_refused(
    channel: UnionPayChannel, message: dict[str, str]
) -> None:
    with pytest.raises(SignatureInvalid):
        channel.verify_and_parse_notification({}, _body(message))


def test_a_notification_for_another_merchant_or_malformed_is_a_protocol_error(
    channel: UnionPayChannel,
) -> None:
    other = material.from_unionpay(_notice(merId="777290058119999"))
    with pytest.raises(ProtocolError, match="merId"):
        channel.verify_and_parse_notification({}, _body(other))
    for body in (b"a=1&a=2", "签名=1".encode(), b"%zz"):
        with pytest.raises(ProtocolError):
            channel.verify_and_parse_notification({}, body)


def test_the_answers_unionpay_wants(channel: UnionPayChannel) -> None:
    assert channel.notification_ack(True).status_code == 200
    assert channel.notification_ack(False).status_code == 400


# Building ------------------------------------------------------------------------------


def _settings(**unionpay: object) -> Settings:
    return load_settings(public_url="https://pay.example", unionpay=material.settings(**unionpay))


def test_the_channel_exists_only_when_merchant_and_unionpay_certificates_are_set() -> None:
    clock = FrozenClock(NOW)
    assert list(build_channels(_settings(), clock)) == ["unionpay"]
    for missing in ("root_cert", "middle_cert", "sign_private_key", "mer_id"):
        assert build_channels(_settings(**{missing: None}), clock) == {}
    assert build_channels(_settings(sign_cert=None), clock) == {}
    assert build_channels(_settings(enabled=False), clock) == {}
    assert list(build_channels(_settings(sign_cert=None, sign_cert_id="1"), clock)) == ["unionpay"]


@pytest.mark.parametrize(
    ("form_url", "expected"),
    [(None, "https://pay.example/forms/unionpay"), ("https://p.example/f", "https://p.example/f")],
)
def test_the_form_page_is_under_public_url_unless_configured(
    form_url: str | None, expected: str
) -> None:
    built = build_channels(_settings(form_url=form_url), FrozenClock(NOW))["unionpay"]
    expires = datetime.now(UTC) + timedelta(minutes=5)
    reference = material.knowpay_id("pay", datetime.now(UTC))
    created = built.create_payment(
        CreatePaymentRequest(reference, Money(1, "CNY"), "x", NOTIFY_URL, expires)
    )
    assert (created.action.url or "").startswith(expected + "?f=")
    assert "frontUrl" not in tf.decode_form((created.action.url or "").split("?f=")[1])
