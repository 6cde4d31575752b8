"""The PayPal adapter against scripted PayPal answers (httpx.MockTransport): what it sends,
when it captures, what it believes, and how PayPal's errors become knowpay's."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.paypal import PayPalChannel, build_channels
from knowpay.channels.paypal.client import PayPalClient
from knowpay.channels.types import ChannelStatus, CreatePaymentRequest, RefundRequest
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import PayPalSettings, load_settings
from knowpay.kit.money import Money
from knowpay.sandbox.paypal import crypto as gateway

BASE = "https://api-m.sandbox.paypal.com"
ORDER_ID = "5O190127TN364715T"
CAPTURE_ID = "3C679366HH908993F"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594"
Handler = Callable[[httpx.Request], httpx.Response]


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def _error(status: int, issue: str, name: str = "UNPROCESSABLE_ENTITY") -> httpx.Response:
    return _json(
        status,
        {
            "name": name,
            "message": "The requested action could not be performed.",
            "details": [{"issue": issue, "description": f"{issue} described"}],
            "debug_id": "f0e1d2c3",
        },
    )


def order(status: str, *captures: dict[str, Any], **unit: Any) -> dict[str, Any]:
    purchase_unit: dict[str, Any] = {
        "reference_id": "default",
        "invoice_id": "pay_1",
        "custom_id": "pay_1",
        "amount": {"currency_code": "USD", "value": "88.88"},
        **unit,
    }
    if captures:
        purchase_unit["payments"] = {"captures": list(captures)}
    return {
        "id": ORDER_ID,
        "status": status,
        "purchase_units": [purchase_unit],
        "links": [
            {"href": f"{BASE}/v2/checkout/orders/{ORDER_ID}", "rel": "self", "method": "GET"},
            {
                "href": f"https://www.sandbox.paypal.com/checkoutnow?token={ORDER_ID}",
                "rel": "approve",
                "method": "GET",
            },
        ],
    }


def capture(status: str = "COMPLETED") -> dict[str, Any]:
    return {
        "id": CAPTURE_ID,
        "status": status,
        "amount": {"currency_code": "USD", "value": "88.88"},
        "create_time": "2026-01-01T12:00:00Z",
    }


@dataclass
class FakePayPal:
    """Scripted answers per "METHOD /path" (consumed in order; the last one repeats), a token
    endpoint, and every request received."""

    answers: dict[str, list[Handler]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    tokens_issued: int = 0
    token_status: int = 200

    def on(self, route: str, *answers: Handler | httpx.Response | dict[str, Any]) -> None:
        self.answers.setdefault(route, []).extend(_handler(a) for a in answers)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/oauth2/token":
            return self._token(request)
        route = f"{request.method} {request.url.path}"
        queue = self.answers.get(route)
        if not queue:
            raise AssertionError(f"unexpected call {route}")
        handler = queue.pop(0) if len(queue) > 1 else queue[0]
        return handler(request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        expected = base64.b64encode(b"client-1:secret-1").decode()
        assert request.headers["authorization"] == f"Basic {expected}"
        assert request.content == b"grant_type=client_credentials"
        if self.token_status != 200:
            return _json(
                self.token_status,
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
            )
        self.tokens_issued += 1
        return _json(
            200,
            {
                "access_token": f"token-{self.tokens_issued}",
                "expires_in": 32400,
                "token_type": "Bearer",
            },
        )

    def calls(self, route: str) -> list[httpx.Request]:
        method, path = route.split(" ", 1)
        return [r for r in self.requests if r.method == method and r.url.path == path]


def _handler(answer: Handler | httpx.Response | dict[str, Any]) -> Handler:
    if isinstance(answer, httpx.Response):
        return lambda _request: answer
    if isinstance(answer, dict):
        return lambda _request: _json(200, answer)
    return answer


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _seconds: None)


@pytest.fixture
def fake() -> FakePayPal:
    return FakePayPal()


def _settings(**fields: Any) -> PayPalSettings:
    base: dict[str, Any] = {
        "client_id": "client-1",
        "client_secret": "secret-1",
        "webhook_id": WEBHOOK_ID,
        "base_url": BASE,
        "cert_hosts": ["*.paypal.com"],
    }
    return PayPalSettings(**{**base, **fields})


def _channel(fake: FakePayPal, **fields: Any) -> PayPalChannel:
    settings = _settings(**fields)
    clock = FrozenClock(datetime.now(UTC))
    client = PayPalClient(settings, clock, transport=httpx.MockTransport(fake.handle))
    return PayPalChannel(client, settings)


@pytest.fixture
def channel(fake: FakePayPal) -> PayPalChannel:
    return _channel(fake)


def _request(**fields: Any) -> CreatePaymentRequest:
    base: dict[str, Any] = {
        "out_trade_no": "pay_1",
        "amount": Money(8888, "USD"),
        "subject": "A course",
        "notify_url": "https://pay.example/notify/paypal",
        "expires_at": datetime(2026, 1, 1, 12, 30, tzinfo=UTC),
        "return_url": "https://pay.example/return/pay_1",
    }
    return CreatePaymentRequest(**{**base, **fields})


def _body(request: httpx.Request) -> Any:
    return json.loads(request.content)


# Configuration -----------------------------------------------------------------------------


def test_build_channels_needs_client_id_secret_and_webhook_id() -> None:
    clock = FrozenClock()
    assert build_channels(load_settings(paypal=_settings()), clock).keys() == {"paypal"}
    for missing in ("client_id", "client_secret", "webhook_id"):
        assert build_channels(load_settings(paypal=_settings(**{missing: None})), clock) == {}
    assert build_channels(load_settings(paypal=_settings(enabled=False)), clock) == {}


def test_the_profile_is_the_configured_currencies(fake: FakePayPal) -> None:
    channel = _channel(fake, currencies=["usd", "JPY", "HUF"])
    assert channel.profile.currencies == {"USD", "JPY", "HUF"}
    assert channel.profile.can_charge(1, "USD")
    assert not channel.profile.can_charge(50, "HUF")  # PayPal takes whole forints only
    assert not channel.profile.can_charge(100, "CNY")


def test_verify_mode_is_postback_or_offline() -> None:
    with pytest.raises(ValueError, match="verify_mode"):
        _settings(verify_mode="trust-me")


# Creating ----------------------------------------------------------------------------------


def test_create_posts_a_capture_order_and_sends_the_buyer_to_approve(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on("POST /v2/checkout/orders", _json(201, order("CREATED")))
    result = channel.create_payment(_request())
    assert result.status is ChannelStatus.PENDING
    assert result.gateway_trade_no == ORDER_ID
    assert result.action.type == "redirect"
    assert result.action.url == f"https://www.sandbox.paypal.com/checkoutnow?token={ORDER_ID}"
    [sent] = fake.calls("POST /v2/checkout/orders")
    assert sent.headers["paypal-request-id"] == "knowpay-create-pay_1"
    assert sent.headers["authorization"] == "Bearer token-1"
    assert sent.headers["prefer"] == "return=representation"
    body = _body(sent)
    assert body["intent"] == "CAPTURE"
    [unit] = body["purchase_units"]
    assert unit["invoice_id"] == unit["custom_id"] == "pay_1"
    assert unit["amount"] == {"currency_code": "USD", "value": "88.88"}
    context = body["application_context"]
    assert context["return_url"] == context["cancel_url"] == "https://pay.example/return/pay_1"


def test_yen_are_sent_without_decimals(fake: FakePayPal) -> None:
    channel = _channel(fake, currencies=["JPY"])
    fake.on("POST /v2/checkout/orders", _json(201, order("CREATED")))
    channel.create_payment(_request(amount=Money(1000, "JPY")))
    amount = _body(fake.calls("POST /v2/checkout/orders")[0])["purchase_units"][0]["amount"]
    assert amount == {"currency_code": "JPY", "value": "1000"}


def test_a_currency_not_configured_is_never_sent(channel: PayPalChannel) -> None:
    with pytest.raises(ProtocolError, match="CNY"):
        channel.create_payment(_request(amount=Money(100, "CNY")))


def test_a_payer_action_link_is_followed_too(channel: PayPalChannel, fake: FakePayPal) -> None:
    created = order("PAYER_ACTION_REQUIRED")
    created["links"][1]["rel"] = "payer-action"
    fake.on("POST /v2/checkout/orders", _json(200, created))
    assert channel.create_payment(_request()).action.url is not None


def test_create_is_retried_with_the_same_request_id_then_unavailable(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on("POST /v2/checkout/orders", _json(503, {"name": "SERVICE_UNAVAILABLE"}))
    with pytest.raises(ChannelUnavailable):
        channel.create_payment(_request())
    sent = fake.calls("POST /v2/checkout/orders")
    assert len(sent) == 3
    assert {r.headers["paypal-request-id"] for r in sent} == {"knowpay-create-pay_1"}


@pytest.mark.parametrize("status", [429, 500, 502, 409])
def test_throttling_and_server_errors_are_unavailable(
    channel: PayPalChannel, fake: FakePayPal, status: int
) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", _json(status, {}))
    with pytest.raises(ChannelUnavailable):
        channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)


def test_a_timeout_is_unavailable(channel: PayPalChannel, fake: FakePayPal) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake.on("POST /v2/checkout/orders", slow)
    with pytest.raises(ChannelUnavailable, match="ReadTimeout"):
        channel.create_payment(_request())


def test_a_refusal_is_declined_with_paypals_issue(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on("POST /v2/checkout/orders", _error(422, "PAYEE_ACCOUNT_RESTRICTED"))
    with pytest.raises(ChannelDeclined) as refused:
        channel.create_payment(_request())
    assert refused.value.code == "PAYEE_ACCOUNT_RESTRICTED"
    assert refused.value.message == "PAYEE_ACCOUNT_RESTRICTED described"


def test_an_answer_that_is_not_json_is_unavailable(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    for body in ("<html>proxy</html>", '{"id": ' + "1" * 5000 + "}", "[" * 100_000):
        # Neither an integer of more digits than int() converts nor nesting deeper than
        # Python's parser goes may escape as anything but an answer that is not JSON.
        fake.on("POST /v2/checkout/orders", httpx.Response(201, text=body))
        with pytest.raises(ChannelUnavailable):
            channel.create_payment(_request())


# The token ---------------------------------------------------------------------------------


def test_one_token_serves_many_calls(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("CREATED"))
    for _ in range(3):
        channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert fake.tokens_issued == 1


def test_a_401_fetches_a_new_token_once(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("CREATED"))
    channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)
    fake.answers[f"GET /v2/checkout/orders/{ORDER_ID}"] = [
        _handler(_json(401, {"error": "invalid_token"})),
        _handler(order("CREATED")),
    ]
    assert channel.query_payment("pay_1", gateway_trade_no=ORDER_ID).status is ChannelStatus.PENDING
    assert fake.tokens_issued == 2
    tokens = [r.headers["authorization"] for r in fake.calls(f"GET /v2/checkout/orders/{ORDER_ID}")]
    assert tokens == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_a_401_with_a_fresh_token_is_a_refusal(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", _json(401, {"name": "AUTHENTICATION_FAILURE"}))
    with pytest.raises(ChannelDeclined) as refused:
        channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert refused.value.code == "AUTHENTICATION_FAILURE"
    assert fake.tokens_issued == 1


def test_wrong_credentials_are_declined(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.token_status = 401
    with pytest.raises(ChannelDeclined) as refused:
        channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert refused.value.code == "invalid_client"


# Querying and capturing --------------------------------------------------------------------


def test_without_an_order_id_there_is_nothing_to_ask(channel: PayPalChannel) -> None:
    assert channel.query_payment("pay_1").status is ChannelStatus.PENDING


def test_an_approved_order_is_captured_with_the_payments_own_request_id(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("APPROVED"))
    fake.on(
        f"POST /v2/checkout/orders/{ORDER_ID}/capture", _json(201, order("COMPLETED", capture()))
    )
    result = channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert (result.status, result.amount) == (ChannelStatus.SUCCEEDED, Money(8888, "USD"))
    assert result.gateway_trade_no == ORDER_ID
    [sent] = fake.calls(f"POST /v2/checkout/orders/{ORDER_ID}/capture")
    assert sent.headers["paypal-request-id"] == "knowpay-capture-pay_1"


def test_a_capture_made_elsewhere_is_read_back(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("APPROVED"), order("COMPLETED", capture()))
    fake.on(f"POST /v2/checkout/orders/{ORDER_ID}/capture", _error(422, "ORDER_ALREADY_CAPTURED"))
    result = channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert result.status is ChannelStatus.SUCCEEDED


def test_an_instrument_declined_fails_the_attempt(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("APPROVED"))
    fake.on(f"POST /v2/checkout/orders/{ORDER_ID}/capture", _error(422, "INSTRUMENT_DECLINED"))
    result = channel.query_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert (result.status, result.failure_code) == (ChannelStatus.FAILED, "INSTRUMENT_DECLINED")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("CREATED", ChannelStatus.PENDING),
        ("PAYER_ACTION_REQUIRED", ChannelStatus.PENDING),
        ("COMPLETED", ChannelStatus.PENDING),  # no capture in it: not proof of payment
        ("VOIDED", ChannelStatus.CLOSED),
    ],
)
def test_orders_that_are_not_approved_are_not_captured(
    channel: PayPalChannel, fake: FakePayPal, status: str, expected: ChannelStatus
) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order(status))
    assert channel.query_payment("pay_1", gateway_trade_no=ORDER_ID).status is expected
    assert fake.calls(f"POST /v2/checkout/orders/{ORDER_ID}/capture") == []


def test_an_order_paypal_does_not_know_is_closed(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(
        f"GET /v2/checkout/orders/{ORDER_ID}",
        _error(404, "INVALID_RESOURCE_ID", "RESOURCE_NOT_FOUND"),
    )
    assert channel.query_payment("pay_1", gateway_trade_no=ORDER_ID).status is ChannelStatus.CLOSED


def test_an_order_of_another_payment_is_no_answer(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("COMPLETED", capture()))
    with pytest.raises(ProtocolError, match="pay_1"):
        channel.query_payment("pay_2", gateway_trade_no=ORDER_ID)


def test_an_approved_order_knowpay_closed_is_never_captured(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on(
        f"GET /v2/checkout/orders/{ORDER_ID}", order("APPROVED", custom_id="knowpay-closed:pay_1")
    )
    assert channel.query_payment("pay_1", gateway_trade_no=ORDER_ID).status is ChannelStatus.CLOSED
    assert fake.calls(f"POST /v2/checkout/orders/{ORDER_ID}/capture") == []


# Closing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["CREATED", "APPROVED"])
def test_close_marks_the_order_so_that_nothing_captures_it(
    channel: PayPalChannel, fake: FakePayPal, status: str
) -> None:
    fake.on(
        f"GET /v2/checkout/orders/{ORDER_ID}",
        order(status),
        order(status, custom_id="knowpay-closed:pay_1"),
    )
    fake.on(f"PATCH /v2/checkout/orders/{ORDER_ID}", httpx.Response(204))
    result = channel.close_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert result.status is ChannelStatus.CLOSED
    [patch] = fake.calls(f"PATCH /v2/checkout/orders/{ORDER_ID}")
    assert _body(patch) == [
        {
            "op": "replace",
            "path": "/purchase_units/@reference_id=='default'/custom_id",
            "value": "knowpay-closed:pay_1",
        }
    ]
    assert fake.calls(f"POST /v2/checkout/orders/{ORDER_ID}/capture") == []


def test_close_reports_a_capture_that_won_the_race(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("APPROVED"), order("COMPLETED", capture()))
    fake.on(f"PATCH /v2/checkout/orders/{ORDER_ID}", _error(422, "ORDER_COMPLETED_OR_VOIDED"))
    result = channel.close_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert (result.status, result.amount) == (ChannelStatus.SUCCEEDED, Money(8888, "USD"))


def test_an_order_paypal_would_not_let_us_mark_is_not_called_closed(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("PAYER_ACTION_REQUIRED"))
    result = channel.close_payment("pay_1", gateway_trade_no=ORDER_ID)
    assert result.status is ChannelStatus.PENDING
    assert fake.calls(f"PATCH /v2/checkout/orders/{ORDER_ID}") == []


def test_closing_what_paypal_never_had_is_closed(channel: PayPalChannel, fake: FakePayPal) -> None:
    assert channel.close_payment("pay_1").status is ChannelStatus.CLOSED
    fake.on(
        f"GET /v2/checkout/orders/{ORDER_ID}",
        _error(404, "INVALID_RESOURCE_ID", "RESOURCE_NOT_FOUND"),
    )
    assert channel.close_payment("pay_1", gateway_trade_no=ORDER_ID).status is ChannelStatus.CLOSED


# Refunds -----------------------------------------------------------------------------------


def _refund_request(**fields: Any) -> RefundRequest:
    base: dict[str, Any] = {
        "out_trade_no": "pay_1",
        "out_refund_no": "rfd_1",
        "amount": Money(3000, "USD"),
        "total": Money(8888, "USD"),
        "reason": "accidental_purchase",
        "notify_url": "",
        "gateway_trade_no": ORDER_ID,
    }
    return RefundRequest(**{**base, **fields})


REFUND = {
    "id": "1JU08902781691411",
    "status": "COMPLETED",
    "custom_id": "rfd_1",
    "amount": {"currency_code": "USD", "value": "30.00"},
}


def test_a_refund_is_made_against_the_orders_capture(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("COMPLETED", capture()))
    fake.on(f"POST /v2/payments/captures/{CAPTURE_ID}/refund", _json(201, REFUND))
    result = channel.refund(_refund_request())
    assert (result.status, result.gateway_refund_no) == (
        ChannelStatus.SUCCEEDED,
        "1JU08902781691411",
    )
    [sent] = fake.calls(f"POST /v2/payments/captures/{CAPTURE_ID}/refund")
    assert sent.headers["paypal-request-id"] == "rfd_1"
    assert _body(sent) == {
        "amount": {"currency_code": "USD", "value": "30.00"},
        "invoice_id": "pay_1",
        "custom_id": "rfd_1",
        "note_to_payer": "accidental purchase",
    }


def test_a_pending_refund_is_pending(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("COMPLETED", capture()))
    fake.on(
        f"POST /v2/payments/captures/{CAPTURE_ID}/refund",
        _json(201, {**REFUND, "status": "PENDING"}),
    )
    assert channel.refund(_refund_request()).status is ChannelStatus.PENDING


def test_a_refused_refund_is_a_failed_result(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("COMPLETED", capture("REFUNDED")))
    fake.on(
        f"POST /v2/payments/captures/{CAPTURE_ID}/refund", _error(422, "CAPTURE_FULLY_REFUNDED")
    )
    result = channel.refund(_refund_request())
    assert (result.status, result.failure_code) == (ChannelStatus.FAILED, "CAPTURE_FULLY_REFUNDED")


def test_nothing_captured_nothing_to_refund(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("APPROVED"))
    assert channel.refund(_refund_request()).failure_code == "no_paid_capture"
    assert channel.refund(_refund_request(gateway_trade_no=None)).failure_code == "no_paypal_order"


def test_a_refund_that_could_not_be_sent_is_unavailable(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("COMPLETED", capture()))
    fake.on(f"POST /v2/payments/captures/{CAPTURE_ID}/refund", _json(500, {}))
    with pytest.raises(ChannelUnavailable):
        channel.refund(_refund_request())
    sent = fake.calls(f"POST /v2/payments/captures/{CAPTURE_ID}/refund")
    assert [r.headers["paypal-request-id"] for r in sent] == ["rfd_1"] * 3


def test_a_refund_is_asked_about_by_paypals_id(channel: PayPalChannel, fake: FakePayPal) -> None:
    assert channel.query_refund("pay_1", "rfd_1").status is ChannelStatus.PENDING
    fake.on("GET /v2/payments/refunds/1JU08902781691411", REFUND)
    result = channel.query_refund("pay_1", "rfd_1", gateway_refund_no="1JU08902781691411")
    assert result.status is ChannelStatus.SUCCEEDED
    with pytest.raises(ProtocolError):
        channel.query_refund("pay_1", "rfd_2", gateway_refund_no="1JU08902781691411")


# Webhooks ----------------------------------------------------------------------------------


def _capture_event() -> bytes:
    event = {
        "id": "WH-58D329510W468432D-8HN650336L201105X",
        "event_version": "1.0",
        "resource_type": "capture",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "summary": "Payment completed for $ 88.88 USD",
        "resource": {
            **capture(),
            "invoice_id": "pay_1",
            "supplementary_data": {"related_ids": {"order_id": ORDER_ID}},
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def _headers(signature: str = "c2ln", cert_url: str = CERT_URL) -> dict[str, str]:
    return {
        "PAYPAL-TRANSMISSION-ID": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        "PAYPAL-TRANSMISSION-TIME": "2026-01-01T12:00:00Z",
        "PAYPAL-TRANSMISSION-SIG": signature,
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "Content-Type": "application/json",
    }


def test_postback_sends_the_event_byte_for_byte(channel: PayPalChannel, fake: FakePayPal) -> None:
    body = _capture_event()
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "SUCCESS"})
    note = channel.verify_and_parse_notification(_headers(), body)
    assert (note.status, note.gateway_trade_no) == (ChannelStatus.SUCCEEDED, ORDER_ID)
    [sent] = fake.calls("POST /v1/notifications/verify-webhook-signature")
    assert sent.content.endswith(b',"webhook_event":' + body + b"}")
    fields = json.loads(sent.content)
    assert fields["webhook_id"] == WEBHOOK_ID  # ours, whatever the event says
    assert fields["cert_url"] == CERT_URL
    assert fields["transmission_sig"] == "c2ln"
    assert fields["auth_algo"] == "SHA256withRSA"


def test_postback_failure_is_a_forgery(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "FAILURE"})
    with pytest.raises(SignatureInvalid):
        channel.verify_and_parse_notification(_headers(), _capture_event())


def test_a_webhook_without_paypals_headers_is_refused_unasked(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    headers = {k: v for k, v in _headers().items() if k != "PAYPAL-CERT-URL"}
    with pytest.raises(SignatureInvalid, match="paypal-cert-url"):
        channel.verify_and_parse_notification(headers, _capture_event())
    assert fake.requests == []


def test_a_webhook_with_a_number_of_thousands_of_digits_is_refused_unasked(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    # Found by fuzzing POST /notify/paypal over HTTP: json.loads refuses an integer of more
    # than 4,300 digits with a plain ValueError (not JSONDecodeError), before any signature
    # was checked: a 500 for any caller.
    body = b'{"id":' + b"1" * 5000 + b"}"
    with pytest.raises(SignatureInvalid, match="not JSON"):
        channel.verify_and_parse_notification(_headers(), body)
    assert fake.requests == []


@pytest.fixture(scope="module")
def paypal_key() -> Any:
    key = gateway.generate_key()
    return key, gateway.self_signed_certificate(key)


def _offline(fake: FakePayPal, paypal_key: Any) -> PayPalChannel:
    fake.on(
        "GET /v1/notifications/certs/CERT-360caa42-fca2a594",
        httpx.Response(200, text=gateway.certificate_pem(paypal_key[1])),
    )
    return _channel(fake, verify_mode="offline")


def _signature(paypal_key: Any, body: bytes, webhook_id: str = WEBHOOK_ID) -> str:
    headers = _headers()
    message = gateway.message(
        headers["PAYPAL-TRANSMISSION-ID"], headers["PAYPAL-TRANSMISSION-TIME"], webhook_id, body
    )
    return gateway.sign(message, paypal_key[0])


def test_offline_verification_with_the_certificate(fake: FakePayPal, paypal_key: Any) -> None:
    channel = _offline(fake, paypal_key)
    body = _capture_event()
    headers = _headers(_signature(paypal_key, body))
    assert channel.verify_and_parse_notification(headers, body).out_trade_no == "pay_1"
    assert channel.verify_and_parse_notification(headers, body).out_trade_no == "pay_1"
    assert len(fake.calls("GET /v1/notifications/certs/CERT-360caa42-fca2a594")) == 1  # cached
    assert fake.calls("POST /v1/notifications/verify-webhook-signature") == []


def test_offline_refuses_another_webhooks_event_and_a_changed_body(
    fake: FakePayPal, paypal_key: Any
) -> None:
    channel = _offline(fake, paypal_key)
    body = _capture_event()
    with pytest.raises(SignatureInvalid):
        channel.verify_and_parse_notification(
            _headers(_signature(paypal_key, body, "WH-SOMEONE-ELSE")), body
        )
    changed = body.replace(b'"88.88"', b'"0.01"')
    with pytest.raises(SignatureInvalid):
        channel.verify_and_parse_notification(_headers(_signature(paypal_key, body)), changed)


def test_offline_never_fetches_a_certificate_from_elsewhere(
    fake: FakePayPal, paypal_key: Any
) -> None:
    channel = _offline(fake, paypal_key)
    body = _capture_event()
    headers = _headers(_signature(paypal_key, body), cert_url="https://evil.example/cert.pem")
    with pytest.raises(SignatureInvalid, match="allowed host"):
        channel.verify_and_parse_notification(headers, body)
    assert fake.requests == []


def _event(event_type: str, resource: dict[str, Any]) -> bytes:
    event = {"id": "WH-EVENT-1", "event_type": event_type, "resource": resource}
    return json.dumps(event).encode()


def test_an_approval_webhook_captures_at_once(channel: PayPalChannel, fake: FakePayPal) -> None:
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "SUCCESS"})
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", order("APPROVED"))
    fake.on(
        f"POST /v2/checkout/orders/{ORDER_ID}/capture", _json(201, order("COMPLETED", capture()))
    )
    note = channel.verify_and_parse_notification(
        _headers(), _event("CHECKOUT.ORDER.APPROVED", order("APPROVED"))
    )
    assert (note.kind, note.status, note.external_id) == (
        "payment",
        ChannelStatus.SUCCEEDED,
        "WH-EVENT-1",
    )
    assert (note.out_trade_no, note.gateway_trade_no, note.amount) == (
        "pay_1",
        ORDER_ID,
        Money(8888, "USD"),
    )
    [sent] = fake.calls(f"POST /v2/checkout/orders/{ORDER_ID}/capture")
    assert sent.headers["paypal-request-id"] == "knowpay-capture-pay_1"


@pytest.mark.parametrize(
    "custom_id", ["someone-elses-order", "knowpay-closed:pay_1"], ids=["foreign", "closed"]
)
def test_an_approval_webhook_for_an_order_knowpay_did_not_make_or_closed_captures_nothing(
    channel: PayPalChannel, fake: FakePayPal, custom_id: str
) -> None:
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "SUCCESS"})
    note = channel.verify_and_parse_notification(
        _headers(), _event("CHECKOUT.ORDER.APPROVED", order("APPROVED", custom_id=custom_id))
    )
    assert note.status is ChannelStatus.PENDING
    assert [r.url.path for r in fake.requests if r.url.path.startswith("/v2")] == []


def test_an_approval_webhook_when_paypal_is_down_stays_pending(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "SUCCESS"})
    fake.on(f"GET /v2/checkout/orders/{ORDER_ID}", _json(503, {}))
    note = channel.verify_and_parse_notification(
        _headers(), _event("CHECKOUT.ORDER.APPROVED", order("APPROVED"))
    )
    assert note.status is ChannelStatus.PENDING  # the active-query job captures later


@pytest.mark.parametrize(
    "event_type", ["BILLING.SUBSCRIPTION.CREATED", "CHECKOUT.ORDER.COMPLETED", "CUSTOMER.DISPUTE"]
)
def test_a_verified_event_knowpay_does_not_act_on_changes_nothing_and_is_acknowledged(
    channel: PayPalChannel, fake: FakePayPal, event_type: str
) -> None:
    """A 400 would have PayPal send it again for 3 days (PROTOCOLS.md §5, §6.3)."""
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "SUCCESS"})
    note = channel.verify_and_parse_notification(_headers(), _event(event_type, {"id": "I-1"}))
    assert (note.kind, note.status, note.attention) == ("payment", ChannelStatus.PENDING, None)


def test_a_reversed_capture_is_acknowledged_and_brought_to_staff(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "SUCCESS"})
    reversed_capture = capture("REVERSED") | {"invoice_id": "pay_1", "custom_id": "pay_1"}
    note = channel.verify_and_parse_notification(
        _headers(), _event("PAYMENT.CAPTURE.REVERSED", reversed_capture)
    )
    assert (note.out_trade_no, note.status) == ("pay_1", ChannelStatus.PENDING)
    assert note.attention is not None
    assert f"PayPal reversed capture {CAPTURE_ID} of payment pay_1" in note.attention


def test_capture_and_refund_events_naming_no_trade_of_ours_name_none(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    """A capture or a refund made elsewhere on the account (PayPal's dashboard): the core
    answers it as an unknown trade, acknowledged, instead of a 400 PayPal retries."""
    fake.on("POST /v1/notifications/verify-webhook-signature", {"verification_status": "SUCCESS"})
    elsewhere = capture() | {"supplementary_data": {"related_ids": {"order_id": ORDER_ID}}}
    paid = channel.verify_and_parse_notification(
        _headers(), _event("PAYMENT.CAPTURE.COMPLETED", elsewhere)
    )
    dashboard_refund = {"id": "DASHREFUND2", "status": "COMPLETED", **capture()}
    refunded = channel.verify_and_parse_notification(
        _headers(), _event("PAYMENT.CAPTURE.REFUNDED", dashboard_refund | {"id": "DASHREFUND2"})
    )
    assert (paid.kind, paid.out_trade_no) == ("payment", "")
    assert (refunded.kind, refunded.out_trade_no, refunded.out_refund_no) == ("refund", "", None)


def test_the_webhook_is_acknowledged_with_any_2xx(channel: PayPalChannel) -> None:
    assert channel.notification_ack(True).status_code == 200
    assert channel.notification_ack(False).status_code == 400


# The bill ----------------------------------------------------------------------------------


def _info(code: str, value: str, **fields: Any) -> dict[str, Any]:
    return {
        "transaction_info": {
            "transaction_id": fields.pop("transaction_id", CAPTURE_ID),
            "transaction_event_code": code,
            "transaction_initiation_date": "2026-01-01T12:00:00+0000",
            "transaction_amount": {"currency_code": "USD", "value": value},
            "transaction_status": fields.pop("status", "S"),
            **fields,
        }
    }


def test_the_bill_is_the_days_transactions_of_knowpays_payments_and_refunds(
    channel: PayPalChannel, fake: FakePayPal
) -> None:
    page_1 = {
        "transaction_details": [
            _info("T0006", "88.88", invoice_id="pay_1"),
            _info(
                "T1107",
                "-30.00",
                invoice_id="pay_1",
                custom_field="rfd_1",
                transaction_id="1JU08902781691411",
            ),
            _info("T0006", "10.00"),  # no invoice id: not made through knowpay
        ],
        "page": 1,
        "total_pages": 2,
    }
    page_2 = {
        "transaction_details": [
            _info("T0006", "5.00", invoice_id="pay_2", status="P"),  # pending: not yet
            _info("T0400", "-50.00", invoice_id="pay_3"),  # a withdrawal
            _info("T0006", "12.00", invoice_id="pay_4", transaction_id="C4"),
        ],
        "page": 2,
        "total_pages": 2,
    }
    fake.on("GET /v1/reporting/transactions", page_1, page_2)
    bill = channel.fetch_bill(datetime(2026, 1, 1, tzinfo=UTC).date())
    assert [(line.out_trade_no, line.kind, line.amount.amount_minor) for line in bill.lines] == [
        ("pay_1", "payment", 8888),
        ("pay_1", "refund", 3000),
        ("pay_4", "payment", 1200),
    ]
    first, second = fake.calls("GET /v1/reporting/transactions")
    assert first.url.params["start_date"] == "2026-01-01T00:00:00+0000"
    assert first.url.params["end_date"] == "2026-01-01T23:59:59+0000"
    assert (first.url.params["page"], second.url.params["page"]) == ("1", "2")
    assert bill.lines[0].occurred_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert bill.lines[0].occurred_at - bill.lines[1].occurred_at == timedelta(0)
