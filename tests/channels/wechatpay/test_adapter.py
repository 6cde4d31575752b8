"""The adapter over httpx.MockTransport: what it sends (signed exactly), how it reads WeChat's
answers (verified first), and how WeChat's error codes become knowpay's errors."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    SignatureInvalid,
)
from knowpay.channels.types import ChannelStatus, RefundRequest
from knowpay.channels.wechatpay.adapter import WechatPayChannel
from knowpay.channels.wechatpay.client import GatewayRefused, MalformedAnswer, UntrustedAnswer
from knowpay.kit.clock import FrozenClock
from knowpay.kit.money import Money
from tests.channels.wechatpay.fake_wechat import (
    FakeWechat,
    answer,
    channel,
    check_request_signature,
    create_request,
    merchant,
)
from tests.channels.wechatpay.material import (
    APPID,
    MCHID,
    PUBLIC_KEY_ID,
    rsa_key,
    transaction,
)

# Opening trades --------------------------------------------------------------------------------


def test_native_sends_a_signed_prepay_and_returns_the_code_url(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    wechat.on("POST", "/v3/pay/transactions/native", answer(200, {"code_url": "weixin://x?pr=1"}))
    result = channel(wechat, clock).create_payment(create_request())
    assert result.status is ChannelStatus.PENDING
    assert result.action.as_dict() == {"type": "qr_code", "code_url": "weixin://x?pr=1"}
    [sent] = wechat.requests
    check_request_signature(sent)
    assert sent.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
    body = json.loads(sent.content)
    assert (body["mchid"], body["appid"], body["amount"]) == (
        MCHID,
        APPID,
        {"total": 9900, "currency": "CNY"},
    )


def test_jsapi_returns_the_signed_js_call(wechat: FakeWechat, clock: FrozenClock) -> None:
    wechat.on("POST", "/v3/pay/transactions/jsapi", answer(200, {"prepay_id": "wx2014102720"}))
    result = channel(wechat, clock, "wechat_jsapi").create_payment(
        create_request(options={"openid": "oU"})
    )
    assert result.action.type == "client_secret"
    assert result.action.client_secret is not None
    call = json.loads(result.action.client_secret)
    assert (call["appId"], call["package"], call["signType"]) == (
        APPID,
        "prepay_id=wx2014102720",
        "RSA",
    )
    message = f"{APPID}\n{call['timeStamp']}\n{call['nonceStr']}\n{call['package']}\n".encode()
    rsa_key("merchant").public_key().verify(
        base64.b64decode(call["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
    )
    assert json.loads(wechat.requests[0].content)["payer"] == {"openid": "oU"}


def test_h5_redirects_to_the_h5_url_and_back(wechat: FakeWechat, clock: FrozenClock) -> None:
    h5_url = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1&package=1"
    wechat.on("POST", "/v3/pay/transactions/h5", answer(200, {"h5_url": h5_url}))
    result = channel(wechat, clock, "wechat_h5").create_payment(
        create_request(client_ip="203.0.113.9", return_url="https://shop.example.com/done?o=1")
    )
    assert result.action.type == "redirect"
    assert (
        result.action.url == h5_url + "&redirect_url=https%3A%2F%2Fshop.example.com%2Fdone%3Fo%3D1"
    )


@pytest.mark.parametrize(
    ("name", "code"), [("wechat_jsapi", "missing_openid"), ("wechat_h5", "missing_client_ip")]
)
def test_a_channel_without_its_payer_details_declines_before_calling(
    wechat: FakeWechat, clock: FrozenClock, name: str, code: str
) -> None:
    with pytest.raises(ChannelDeclined) as declined:
        channel(wechat, clock, name).create_payment(create_request(client_ip=None))
    assert declined.value.code == code
    assert wechat.requests == []


def test_a_refused_prepay_is_a_decline_and_a_failing_one_is_not_retried(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    path = "/v3/pay/transactions/native"
    wechat.on("POST", path, answer(400, {"code": "PARAM_ERROR", "message": "out_trade_no"}))
    with pytest.raises(ChannelDeclined) as declined:
        channel(wechat, clock).create_payment(create_request())
    assert (declined.value.code, declined.value.message) == ("PARAM_ERROR", "out_trade_no")
    wechat.on("POST", path, answer(500, {"code": "SYSTEM_ERROR", "message": "系统错误"}))
    wechat.requests.clear()
    with pytest.raises(ChannelUnavailable):
        channel(wechat, clock).create_payment(create_request())
    assert len(wechat.requests) == 1  # opening a trade is not idempotent: no retry


def test_orderpaid_on_create_is_believed_only_from_a_verified_query(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    wechat.on(
        "POST",
        "/v3/pay/transactions/native",
        answer(400, {"code": "ORDERPAID", "message": "该订单已支付"}),
    )
    query = "/v3/pay/transactions/out-trade-no/pay_01jd3k0000000000000000000a"
    wechat.on("GET", query, answer(200, transaction()))
    result = channel(wechat, clock).create_payment(create_request())
    assert (result.status, result.paid_amount) == (ChannelStatus.SUCCEEDED, Money(9900, "CNY"))
    assert wechat.requests[1].url.params["mchid"] == MCHID
    check_request_signature(wechat.requests[1])  # the query string is part of the signed URL


# Querying and closing --------------------------------------------------------------------------

QUERY = "/v3/pay/transactions/out-trade-no/pay_01jd3k0000000000000000000a"


def test_a_query_is_retried_through_server_errors(wechat: FakeWechat, clock: FrozenClock) -> None:
    failing = answer(500, {"code": "SYSTEM_ERROR", "message": "系统错误"})
    wechat.on("GET", QUERY, failing, failing, answer(200, transaction()))
    result = channel(wechat, clock).query_payment("pay_01jd3k0000000000000000000a")
    assert result.status is ChannelStatus.SUCCEEDED
    assert len(wechat.requests) == 3


def test_an_unknown_trade_is_pending_and_a_refused_query_is_no_answer(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    wechat.on("GET", QUERY, answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}))
    result = channel(wechat, clock).query_payment("pay_01jd3k0000000000000000000a")
    assert (result.status, result.failure_code) == (ChannelStatus.PENDING, "ORDER_NOT_EXIST")
    wechat.on("GET", QUERY, answer(401, {"code": "SIGN_ERROR", "message": "签名错误"}))
    with pytest.raises(GatewayRefused) as refused:
        channel(wechat, clock).query_payment("pay_01jd3k0000000000000000000a")
    assert refused.value.code == "SIGN_ERROR"
    assert isinstance(refused.value, ChannelUnavailable)


@pytest.mark.parametrize("problem", ["forged", "unsigned", "stale"])
def test_an_answer_that_does_not_verify_is_not_believed(
    wechat: FakeWechat, clock: FrozenClock, problem: str
) -> None:
    if problem == "forged":
        wechat.sign_with = rsa_key("stranger")
    if problem == "unsigned":
        wechat.on("GET", QUERY, answer(200, json.dumps(transaction()).encode()))
    else:
        wechat.on("GET", QUERY, answer(200, transaction()))
    sender = merchant(wechat, clock)
    if problem == "stale":
        clock.advance(timedelta(seconds=301))
    with pytest.raises(UntrustedAnswer) as untrusted:
        WechatPayChannel("wechat_native", sender, clock).query_payment(
            "pay_01jd3k0000000000000000000a"
        )
    assert isinstance(untrusted.value, SignatureInvalid)
    assert isinstance(untrusted.value, ChannelUnavailable)


def test_a_verified_answer_about_another_merchant_is_not_believed(
    wechat: FakeWechat, clock: FrozenClock
) -> None:
    wechat.on("GET", QUERY, answer(200, transaction(mchid="1900000000")))
    with pytest.raises(MalformedAnswer):
        channel(wechat, clock).query_payment("pay_01jd3k0000000000000000000a")


def test_an_unreachable_gateway_is_unavailable(clock: FrozenClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    wechat = FakeWechat(clock)
    unreachable = merchant(wechat, clock)
    unreachable.client._http._transport = httpx.MockTransport(refuse)
    with pytest.raises(ChannelUnavailable, match="cannot be reached"):
        unreachable.query("pay_01jd3k0000000000000000000a")


def test_closing(wechat: FakeWechat, clock: FrozenClock) -> None:
    close = QUERY + "/close"
    wechat.on("POST", close, answer(204))
    assert channel(wechat, clock).close_payment("pay_01jd3k0000000000000000000a").status is (
        ChannelStatus.CLOSED
    )
    assert json.loads(wechat.requests[0].content) == {"mchid": MCHID}
    wechat.on("POST", close, answer(400, {"code": "ORDERPAID", "message": "该订单已支付"}))
    wechat.on("GET", QUERY, answer(200, transaction()))
    paid = channel(wechat, clock).close_payment("pay_01jd3k0000000000000000000a")
    assert (paid.status, paid.amount) == (ChannelStatus.SUCCEEDED, Money(9900, "CNY"))
    # Not there yet (a create call given up on may still make it): not closed.
    wechat.on("POST", close, answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}))
    assert channel(wechat, clock).close_payment("pay_01jd3k0000000000000000000a").status is (
        ChannelStatus.PENDING
    )


# Refunds ---------------------------------------------------------------------------------------

REFUND = RefundRequest(
    out_trade_no="pay_1",
    out_refund_no="re_1",
    amount=Money(3000, "CNY"),
    total=Money(9900, "CNY"),
    reason="不想学了",
    notify_url="https://pay.example.com/notify/wechatpay",
)


def test_refunds(wechat: FakeWechat, clock: FrozenClock) -> None:
    refund = {
        "refund_id": "50000",
        "out_refund_no": "re_1",
        "out_trade_no": "pay_1",
        "status": "PROCESSING",
    }
    wechat.on("POST", "/v3/refund/domestic/refunds", answer(200, refund))
    result = channel(wechat, clock).refund(REFUND)
    assert (result.status, result.gateway_refund_no, result.failure_code) == (
        ChannelStatus.PENDING,
        "50000",
        None,
    )
    wechat.on(
        "POST",
        "/v3/refund/domestic/refunds",
        answer(403, {"code": "NOT_ENOUGH", "message": "余额不足"}),
    )
    declined = channel(wechat, clock).refund(REFUND)
    assert (declined.status, declined.failure_code) == (ChannelStatus.FAILED, "NOT_ENOUGH")
    wechat.on(
        "GET", "/v3/refund/domestic/refunds/re_1", answer(200, {**refund, "status": "SUCCESS"})
    )
    assert channel(wechat, clock).query_refund("pay_1", "re_1").status is ChannelStatus.SUCCEEDED
    wechat.on(
        "GET",
        "/v3/refund/domestic/refunds/re_1",
        answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": "?"}),
    )
    assert channel(wechat, clock).query_refund("pay_1", "re_1").status is ChannelStatus.PENDING
