"""The Alipay adapter against scripted gateway answers (httpx.MockTransport): what it sends,
what it believes, and how Alipay's errors become knowpay's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest

from knowpay.channels.alipay import AlipayChannel, build_channels
from knowpay.channels.alipay.client import AlipayClient, MalformedResponse, UnverifiedResponse
from knowpay.channels.alipay.signing import AlipayKeyError
from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.types import ChannelStatus, CreatePaymentRequest, RefundRequest
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import AlipaySettings, load_settings
from knowpay.kit.money import Money
from knowpay.sandbox.alipay import crypto as gateway_crypto
from knowpay.sandbox.alipay import gateway as simulated
from tests.channels.alipay.conftest import KeyPair

APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"
GATEWAY = "https://openapi.example/gateway.do"
Answer = Callable[[str, dict[str, Any]], httpx.Response]


@dataclass
class Gateway:
    """Scripted answers, one per request, and the requests received."""

    merchant: simulated.Merchant
    answers: list[Answer] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode()))
        self.requests.append(params)
        method, biz = simulated.check_request(params, self.merchant)
        return self.answers.pop(0)(method, biz)

    def signed(self, content: dict[str, Any]) -> Answer:
        return lambda method, _biz: httpx.Response(
            200, text=simulated.answer(method, content, self.merchant, signed=True)
        )

    def unsigned(self, content: dict[str, Any]) -> Answer:
        return lambda method, _biz: httpx.Response(
            200, text=simulated.answer(method, content, self.merchant, signed=False)
        )

    @staticmethod
    def raw(status: int, text: str = "") -> Answer:
        return lambda _method, _biz: httpx.Response(status, text=text)


OK = {"code": "10000", "msg": "Success"}


def _refusal(sub_code: str, code: str = "40004") -> dict[str, Any]:
    return {"code": code, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": "原因"}


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries happen; their waits are skipped here (no servers or threads in these tests)."""
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _seconds: None)


@pytest.fixture
def gateway(app_key: KeyPair, alipay_key: KeyPair) -> Gateway:
    return Gateway(simulated.Merchant(APP_ID, SELLER_ID, app_key.public, alipay_key.private))


@pytest.fixture
def settings(app_key: KeyPair, alipay_key: KeyPair) -> AlipaySettings:
    return AlipaySettings(
        app_id=APP_ID,
        private_key=app_key.private_pem,
        alipay_public_key=alipay_key.public_pem,
        gateway_url=GATEWAY,
        seller_id=SELLER_ID,
    )


@pytest.fixture
def channels(gateway: Gateway, settings: AlipaySettings) -> Iterator[dict[str, AlipayChannel]]:
    clock = FrozenClock(datetime(2026, 1, 1, 4, 0, tzinfo=UTC))
    client = AlipayClient(settings, clock, transport=httpx.MockTransport(gateway.handle))
    yield {
        product: AlipayChannel(f"alipay_{product}", product, client)
        for product in ("page", "wap", "qr")
    }
    client.close()


def _request(**fields: Any) -> CreatePaymentRequest:
    base: dict[str, Any] = {
        "out_trade_no": "pay_1",
        "amount": Money(9900, "CNY"),
        "subject": "课程",
        "notify_url": "https://pay.example/notify/alipay",
        "expires_at": datetime(2026, 1, 1, 4, 30, tzinfo=UTC),
    }
    return CreatePaymentRequest(**{**base, **fields})


def test_build_channels_needs_app_id_and_both_keys(settings: AlipaySettings) -> None:
    built = build_channels(load_settings(alipay=settings), FrozenClock())
    assert sorted(built) == ["alipay_page", "alipay_qr", "alipay_wap"]
    assert {c.gateway for c in built.values()} == {"alipay"}
    assert all(c.profile.currencies == frozenset({"CNY"}) for c in built.values())
    for missing in ({"app_id": None}, {"alipay_public_key": None}, {"enabled": False}):
        assert (
            build_channels(load_settings(alipay=settings.model_copy(update=missing)), FrozenClock())
            == {}
        )


def test_a_malformed_key_fails_at_start_naming_the_setting(settings: AlipaySettings) -> None:
    broken = settings.model_copy(update={"alipay_public_key": "bm90IGEga2V5"})
    with pytest.raises(AlipayKeyError, match="KNOWPAY_ALIPAY__ALIPAY_PUBLIC_KEY"):
        AlipayClient(broken, FrozenClock())


@pytest.mark.parametrize(
    ("product", "method", "product_code"),
    [("page", "alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
     ("wap", "alipay.trade.wap.pay", "QUICK_WAP_WAY")],
)  # fmt: skip
def test_page_and_wap_redirect_to_the_signed_gateway_url(
    channels: dict[str, AlipayChannel],
    gateway: Gateway,
    product: str,
    method: str,
    product_code: str,
) -> None:
    result = channels[product].create_payment(_request(return_url="https://shop.example/back"))
    assert result.status is ChannelStatus.PENDING
    assert result.action.type == "redirect"
    url = urlsplit(result.action.url or "")
    assert f"{url.scheme}://{url.netloc}{url.path}" == GATEWAY
    params = dict(parse_qsl(url.query))
    # The simulated gateway accepts the query exactly as the browser will bring it.
    assert simulated.check_request(params, gateway.merchant)[0] == method
    biz = json.loads(params["biz_content"])
    assert biz["product_code"] == product_code
    assert biz["total_amount"] == "99.00"
    assert biz["time_expire"] == "2026-01-01 12:30:00"
    assert params["notify_url"] == "https://pay.example/notify/alipay"
    assert params["timestamp"] == "2026-01-01 12:00:00"
    assert ("quit_url" in biz) is (product == "wap")
    assert "timeout_express" not in biz  # page and wap pay take time_expire
    assert gateway.requests == []  # no server call: the browser carries the request


def test_precreate_answers_the_qr_code_and_is_not_retried(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    gateway.answers.append(
        gateway.signed({**OK, "out_trade_no": "pay_1", "qr_code": "https://qr.alipay.com/bax1"})
    )
    result = channels["qr"].create_payment(_request())
    assert result.action.type == "qr_code"
    assert result.action.code_url == "https://qr.alipay.com/bax1"
    assert gateway.requests[0]["method"] == "alipay.trade.precreate"
    biz = json.loads(gateway.requests[0]["biz_content"])
    # The QR API is documented with the relative limit: 30 minutes left at 12:00 Beijing.
    assert (biz["timeout_express"], biz["time_expire"]) == ("30m", "2026-01-01 12:30:00")
    gateway.answers[:] = [gateway.raw(502), gateway.signed(OK)]
    with pytest.raises(ChannelUnavailable):
        channels["qr"].create_payment(_request())
    assert len(gateway.requests) == 2  # opening a trade is not retried blindly


def test_queries_are_retried_on_5xx_and_settle_from_the_answer(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    paid = {**OK, "trade_status": "TRADE_SUCCESS", "total_amount": "99.00", "trade_no": "T1",
            "send_pay_date": "2026-01-01 12:01:00"}  # fmt: skip
    gateway.answers[:] = [gateway.raw(503), gateway.raw(500), gateway.signed(paid)]
    result = channels["page"].query_payment("pay_1")
    assert (result.status, result.amount, result.gateway_trade_no) == (
        ChannelStatus.SUCCEEDED,
        Money(9900, "CNY"),
        "T1",
    )
    assert len(gateway.requests) == 3
    gateway.answers[:] = [gateway.raw(503)] * 3
    with pytest.raises(ChannelUnavailable):
        channels["page"].query_payment("pay_1")


def test_a_trade_alipay_does_not_know_yet_is_pending(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    gateway.answers.append(gateway.signed(_refusal("ACQ.TRADE_NOT_EXIST")))
    assert channels["qr"].query_payment("pay_1").status is ChannelStatus.PENDING


@pytest.mark.parametrize(
    ("content", "signed", "error"),
    [
        (_refusal("ACQ.SYSTEM_ERROR"), True, ChannelUnavailable),
        ({"code": "20000", "msg": "Service Currently Unavailable"}, True, ChannelUnavailable),
        (_refusal("ACQ.INVALID_PARAMETER"), True, ChannelDeclined),
        (_refusal("isv.invalid-app-id", code="40002"), False, ChannelDeclined),
        (_refusal("ACQ.TRADE_HAS_SUCCESS"), False, UnverifiedResponse),
        (
            {**OK, "trade_status": "TRADE_SUCCESS", "total_amount": "99.00"},
            False,
            UnverifiedResponse,
        ),
    ],
)
def test_gateway_answers_become_knowpay_errors(
    channels: dict[str, AlipayChannel],
    gateway: Gateway,
    content: dict[str, Any],
    signed: bool,
    error: type[Exception],
) -> None:
    gateway.answers.append(gateway.signed(content) if signed else gateway.unsigned(content))
    with pytest.raises(error) as raised:
        channels["qr"].query_payment("pay_1")
    if isinstance(raised.value, ChannelDeclined):
        assert raised.value.code == content["sub_code"]
        assert raised.value.message == "原因"


def test_an_answer_that_is_tampered_or_not_json_counts_as_no_answer(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    body = simulated.answer("alipay.trade.query", {**OK, "trade_status": "TRADE_SUCCESS",
                            "total_amount": "0.01"}, gateway.merchant, signed=True)  # fmt: skip
    gateway.answers.append(gateway.raw(200, body.replace("0.01", "9.99")))
    with pytest.raises(UnverifiedResponse) as raised:
        channels["qr"].query_payment("pay_1")
    assert isinstance(raised.value, SignatureInvalid)
    gateway.answers.append(gateway.raw(200, "<html>maintenance</html>"))
    with pytest.raises(MalformedResponse):
        channels["qr"].query_payment("pay_1")
    about_another = {**OK, "out_trade_no": "pay_2", "trade_status": "TRADE_SUCCESS",
                     "total_amount": "99.00"}  # fmt: skip
    gateway.answers.append(gateway.signed(about_another))  # genuine, but not about pay_1
    with pytest.raises(MalformedResponse):
        channels["qr"].query_payment("pay_1")


def test_close_treats_an_unknown_trade_as_still_payable_and_a_paid_one_as_paid(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    # An unscanned QR code has no trade to close, but makes one when scanned: not closed.
    gateway.answers.append(gateway.signed(_refusal("ACQ.TRADE_NOT_EXIST")))
    assert channels["qr"].close_payment("pay_1").status is ChannelStatus.PENDING
    gateway.answers.append(gateway.signed({**OK, "trade_no": "T1", "out_trade_no": "pay_1"}))
    assert channels["qr"].close_payment("pay_1").gateway_trade_no == "T1"
    paid = {**OK, "trade_status": "TRADE_SUCCESS", "total_amount": "99.00", "trade_no": "T1"}
    gateway.answers[:] = [gateway.signed(_refusal("ACQ.TRADE_STATUS_ERROR")), gateway.signed(paid)]
    assert channels["qr"].close_payment("pay_1").status is ChannelStatus.SUCCEEDED
    assert [r["method"] for r in gateway.requests[-2:]] == [
        "alipay.trade.close",
        "alipay.trade.query",
    ]


def test_a_refund_answer_about_another_trade_or_request_is_no_answer(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    """Found by an independent Alipay implementation: a signed refund answer naming another
    trade, and a refund query answer naming another refund request, settled this refund."""
    request = RefundRequest(
        "pay_1", "re_1", Money(1000, "CNY"), Money(9900, "CNY"), "不想要了", "", "T1"
    )
    gateway.answers.append(
        gateway.signed({**OK, "fund_change": "Y", "refund_fee": "10.00", "trade_no": "T2"})
    )
    with pytest.raises(ProtocolError):
        channels["page"].refund(request)
    gateway.answers.append(
        gateway.signed({**OK, "out_request_no": "re_2", "refund_amount": "10.00"})
    )
    with pytest.raises(ProtocolError):
        channels["page"].query_refund("pay_1", "re_1", gateway_trade_no="T1")
    gateway.answers[:] = [
        gateway.signed({**OK, "fund_change": "N", "refund_fee": "10.00", "trade_no": "T1"}),
        gateway.signed({**OK, "out_request_no": "re_1", "refund_amount": "5.00"}),
    ]
    with pytest.raises(ProtocolError):
        channels["page"].refund(request)


def test_refunds_send_out_request_no_and_confirm_when_no_money_moved(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    request = RefundRequest("pay_1", "re_1", Money(1000, "CNY"), Money(9900, "CNY"), "不想要了", "")
    gateway.answers.append(
        gateway.signed({**OK, "fund_change": "Y", "refund_fee": "10.00", "trade_no": "T1"})
    )
    assert channels["page"].refund(request).status is ChannelStatus.SUCCEEDED
    biz = json.loads(gateway.requests[-1]["biz_content"])
    assert (biz["out_request_no"], biz["refund_amount"]) == ("re_1", "10.00")
    gateway.answers[:] = [
        gateway.signed({**OK, "fund_change": "N", "refund_fee": "10.00"}),
        gateway.signed(
            {**OK, "out_request_no": "re_1", "refund_amount": "10.00", "trade_no": "T1"}
        ),
    ]
    assert channels["page"].refund(request).status is ChannelStatus.SUCCEEDED
    assert gateway.requests[-1]["method"] == "alipay.trade.fastpay.refund.query"
    gateway.answers.append(gateway.signed(_refusal("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")))
    refused = channels["page"].refund(request)
    assert (refused.status, refused.failure_code) == (
        ChannelStatus.FAILED,
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    )


def _notification(
    key: KeyPair, charset: str = "utf-8", signed_in: str | None = None, **fields: str
) -> bytes:
    params = {
        "notify_id": "n1", "notify_type": "trade_status_sync", "app_id": APP_ID,
        "seller_id": SELLER_ID, "out_trade_no": "pay_1", "trade_no": "T1",
        "trade_status": "TRADE_SUCCESS", "total_amount": "99.00", "subject": "课程 A&B=C+D",
        "charset": charset, "sign_type": "RSA2",
    }  # fmt: skip
    params.update(fields)
    content = gateway_crypto.notify_content(params)
    params["sign"] = gateway_crypto.sign(content, key.private, signed_in or charset)
    return "&".join(
        f"{k}={quote(v, safe='', encoding=charset)}" for k, v in params.items()
    ).encode()


def test_a_signed_notification_is_verified_over_its_decoded_values(
    channels: dict[str, AlipayChannel], alipay_key: KeyPair
) -> None:
    for charset in ("utf-8", "gbk"):
        note = channels["qr"].verify_and_parse_notification({}, _notification(alipay_key, charset))
        assert (note.external_id, note.status, note.amount) == (
            "n1",
            ChannelStatus.SUCCEEDED,
            Money(9900, "CNY"),
        )


def test_a_notification_is_signed_over_the_bytes_of_its_own_charset(
    channels: dict[str, AlipayChannel], alipay_key: KeyPair
) -> None:
    """Found by an independent Alipay implementation: a GBK notification was checked over the
    UTF-8 bytes of its text, so Alipay's genuine GBK notifications (signed over GBK bytes, as
    its SDKs check) were refused, and a forger's UTF-8 signature was taken."""
    with pytest.raises(SignatureInvalid):
        channels["qr"].verify_and_parse_notification(
            {}, _notification(alipay_key, "gbk", signed_in="utf-8")
        )


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"app_id": "2021009999999999"}, ProtocolError),
        ({"seller_id": "2088009999999999"}, ProtocolError),
        ({"sign_type": "RSA"}, SignatureInvalid),
    ],
)
def test_notifications_for_someone_else_are_refused(
    channels: dict[str, AlipayChannel],
    alipay_key: KeyPair,
    fields: dict[str, str],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        channels["qr"].verify_and_parse_notification({}, _notification(alipay_key, **fields))


def test_forged_and_malformed_notifications_are_refused(
    channels: dict[str, AlipayChannel], alipay_key: KeyPair, app_key: KeyPair
) -> None:
    forged = _notification(app_key)  # signed, but not with Alipay's key
    genuine = _notification(alipay_key)
    tampered = genuine.replace(b"total_amount=99.00", b"total_amount=0.01")
    for body in (forged, tampered, genuine.split(b"&sign=")[0]):
        with pytest.raises(SignatureInvalid):
            channels["qr"].verify_and_parse_notification({}, body)
    for body in (genuine + b"&app_id=x", b"\xff\xfe", b"%E4"):
        with pytest.raises((ProtocolError, SignatureInvalid)):
            channels["qr"].verify_and_parse_notification({}, body)


def test_the_ack_is_alipays(channels: dict[str, AlipayChannel]) -> None:
    accepted, refused = (
        channels["qr"].notification_ack(True),
        channels["qr"].notification_ack(False),
    )
    assert (accepted.status_code, accepted.body, accepted.content_type) == (
        200,
        b"success",
        "text/plain",
    )
    assert refused.body == b"failure"


def test_time_expire_follows_the_order(
    channels: dict[str, AlipayChannel], gateway: Gateway
) -> None:
    expires = datetime(2026, 1, 1, 4, 0, tzinfo=UTC) + timedelta(hours=2)
    url = channels["page"].create_payment(_request(expires_at=expires)).action.url or ""
    biz = json.loads(dict(parse_qsl(urlsplit(url).query))["biz_content"])
    assert biz["time_expire"] == "2026-01-01 14:00:00"
