"""The Stripe adapter against scripted answers (httpx.MockTransport): what it sends (form
encoding, keys, version, idempotency keys reused on retries), what it believes, and how
Stripe's errors become knowpay's."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import SecretStr

from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.stripe import StripeChannel, build_channels, signing
from knowpay.channels.stripe.client import MalformedResponse, StripeClient, encode_form
from knowpay.channels.types import ChannelStatus, CreatePaymentRequest, RefundRequest
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import StripeSettings, load_settings
from knowpay.kit.money import Money

SECRET_KEY = "sk_test_0123456789"
WEBHOOK_SECRET = "whsec_current"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Answer = Callable[[httpx.Request], httpx.Response]


@dataclass
class Gateway:
    """Scripted answers, one per request, and the requests received."""

    answers: list[Answer] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.answers.pop(0)(request)

    def form(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.requests[index].content.decode()))

    def query(self, index: int = -1) -> dict[str, str]:
        return dict(self.requests[index].url.params)


def ok(body: dict[str, Any]) -> Answer:
    return lambda _request: httpx.Response(200, json=body)


def error(status: int, **fields: Any) -> Answer:
    return lambda _request: httpx.Response(status, json={"error": fields})


def raw(status: int, text: str = "") -> Answer:
    return lambda _request: httpx.Response(status, text=text)


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


def intent(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 1499,
        "amount_received": 0,
        "currency": "usd",
        "client_secret": "pi_1_secret_abc",
        "metadata": {"out_trade_no": "pay_1"},
        "status": "requires_payment_method",
        "latest_charge": None,
        "last_payment_error": None,
    }
    return {**base, **fields}


def refund(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "re_1",
        "object": "refund",
        "amount": 500,
        "currency": "usd",
        "status": "succeeded",
        "payment_intent": "pi_1",
        "metadata": {"out_trade_no": "pay_1", "out_refund_no": "rfd_1"},
    }
    return {**base, **fields}


def stripe_settings(**fields: Any) -> StripeSettings:
    base: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "base_url": "https://api.stripe.test",
        "timeout_s": 1.0,
    }
    return StripeSettings(**{**base, **fields})


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries happen; their waits are skipped here."""
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _seconds: None)


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


def make_channel(gateway: Gateway, clock: FrozenClock, **settings: Any) -> StripeChannel:
    configured = stripe_settings(**settings)
    client = StripeClient(configured, transport=httpx.MockTransport(gateway.handle))
    return StripeChannel(configured, client, clock)


@pytest.fixture
def channel(gateway: Gateway, clock: FrozenClock) -> StripeChannel:
    return make_channel(gateway, clock)


def create_request(amount: Money = Money(1499, "USD")) -> CreatePaymentRequest:
    return CreatePaymentRequest(
        out_trade_no="pay_1",
        amount=amount,
        subject="A   course\non Python",
        notify_url="https://knowpay.example/notify/stripe",
        expires_at=NOW + timedelta(minutes=30),
    )


# Creating ------------------------------------------------------------------------------------


def test_create_posts_a_form_with_nested_keys_and_an_idempotency_key(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers.append(ok(intent()))
    result = channel.create_payment(create_request())
    sent = gateway.requests[0]
    assert (sent.method, sent.url.path) == ("POST", "/v1/payment_intents")
    assert sent.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert sent.headers["stripe-version"] == "2024-06-20"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.headers["idempotency-key"] == "knowpay:create:pay_1"
    assert gateway.form() == {
        "amount": "1499",
        "currency": "usd",
        "automatic_payment_methods[enabled]": "true",
        "description": "A course on Python",
        "metadata[out_trade_no]": "pay_1",
    }
    assert result.status is ChannelStatus.PENDING
    assert result.gateway_trade_no == "pi_1"
    assert result.action.as_dict() == {"type": "client_secret", "client_secret": "pi_1_secret_abc"}


def test_a_zero_decimal_amount_is_sent_as_is(channel: StripeChannel, gateway: Gateway) -> None:
    gateway.answers.append(ok(intent(amount=1500, currency="jpy")))
    channel.create_payment(create_request(Money(1500, "JPY")))
    assert (gateway.form()["amount"], gateway.form()["currency"]) == ("1500", "jpy")


def test_an_amount_stripe_cannot_write_is_declined_without_a_call(
    channel: StripeChannel, gateway: Gateway
) -> None:
    with pytest.raises(ChannelDeclined):
        channel.create_payment(create_request(Money(5125, "KWD")))
    assert gateway.requests == []


def test_the_payer_page_url_is_filled_in_when_configured(
    gateway: Gateway, clock: FrozenClock
) -> None:
    channel = make_channel(
        gateway, clock, payer_page_url="https://pay.example/{id}?s={client_secret}"
    )
    gateway.answers.append(ok(intent()))
    action = channel.create_payment(create_request()).action
    assert action.url == "https://pay.example/pi_1?s=pi_1_secret_abc"


def test_server_errors_are_retried_with_the_same_key_then_unavailable(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers += [error(500, type="api_error"), timeout, raw(502, "<html>")]
    with pytest.raises(ChannelUnavailable):
        channel.create_payment(create_request())
    assert len(gateway.requests) == 3
    assert {r.headers["idempotency-key"] for r in gateway.requests} == {"knowpay:create:pay_1"}
    assert len({r.content for r in gateway.requests}) == 1


def test_a_retry_after_429_or_409_succeeds(channel: StripeChannel, gateway: Gateway) -> None:
    gateway.answers += [
        error(429, type="invalid_request_error", code="rate_limit"),
        error(409, type="idempotency_error", code="idempotency_key_in_use"),
        ok(intent()),
    ]
    assert channel.create_payment(create_request()).gateway_trade_no == "pi_1"
    assert len(gateway.requests) == 3


def test_a_4xx_error_object_is_a_decline_with_stripes_code(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers.append(
        error(400, type="invalid_request_error", code="amount_too_small", message="at least $0.50")
    )
    with pytest.raises(ChannelDeclined) as declined:
        channel.create_payment(create_request())
    assert (declined.value.code, declined.value.message) == ("amount_too_small", "at least $0.50")
    assert len(gateway.requests) == 1  # a decline is not retried
    gateway.answers.append(error(401, type="invalid_request_error", message="Invalid API Key"))
    with pytest.raises(ChannelDeclined) as unauthorised:
        channel.create_payment(create_request())
    assert unauthorised.value.code == "invalid_request_error"


def test_an_answer_that_is_not_stripes_json_is_no_answer(
    channel: StripeChannel, gateway: Gateway
) -> None:
    for body in ("<html>proxy</html>", '{"id": ' + "1" * 5000 + "}", "[" * 100_000):
        # Neither an integer of more digits than int() converts nor nesting deeper than
        # Python's parser goes may escape as anything but a malformed answer.
        gateway.answers.append(raw(200, body))
        with pytest.raises(MalformedResponse):
            channel.create_payment(create_request())
    gateway.answers.append(ok(intent(metadata={"out_trade_no": "pay_other"})))
    with pytest.raises(ProtocolError, match="asked about pay_1"):
        channel.create_payment(create_request())
    gateway.answers.append(ok(intent(client_secret=None)))
    with pytest.raises(ProtocolError, match="client_secret"):
        channel.create_payment(create_request())


# Querying and closing ------------------------------------------------------------------------


def test_query_reads_the_intent_by_id_with_its_charge(
    channel: StripeChannel, gateway: Gateway
) -> None:
    charge = {"id": "ch_1", "object": "charge", "created": int(NOW.timestamp())}
    gateway.answers.append(
        ok(intent(status="succeeded", amount_received=1499, latest_charge=charge))
    )
    result = channel.query_payment("pay_1", gateway_trade_no="pi_1")
    assert gateway.requests[0].url.path == "/v1/payment_intents/pi_1"
    assert gateway.query() == {"expand[0]": "latest_charge"}
    assert (result.status, result.amount, result.paid_at) == (
        ChannelStatus.SUCCEEDED,
        Money(1499, "USD"),
        NOW,
    )


def test_query_without_an_id_searches_by_our_number(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers += [
        ok({"object": "search_result", "data": [intent()], "has_more": False}),
        ok(intent()),
    ]
    assert channel.query_payment("pay_1").status is ChannelStatus.PENDING
    assert gateway.requests[0].url.path == "/v1/payment_intents/search"
    assert gateway.query(0)["query"] == "metadata['out_trade_no']:'pay_1'"
    gateway.answers.append(ok({"object": "search_result", "data": [], "has_more": False}))
    nothing = channel.query_payment("pay_1")
    assert (nothing.status, nothing.gateway_trade_no) == (ChannelStatus.PENDING, None)


def test_close_cancels_the_intent_with_its_own_key(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers.append(ok(intent(status="canceled")))
    assert channel.close_payment("pay_1", gateway_trade_no="pi_1").status is ChannelStatus.CLOSED
    sent = gateway.requests[0]
    assert sent.url.path == "/v1/payment_intents/pi_1/cancel"
    assert sent.headers["idempotency-key"] == "knowpay:cancel:pay_1"
    assert gateway.form() == {"cancellation_reason": "abandoned"}


def test_closing_an_intent_that_succeeded_meanwhile_reports_success(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers += [
        error(400, type="invalid_request_error", code="payment_intent_unexpected_state"),
        ok(intent(status="succeeded", amount_received=1499)),
    ]
    result = channel.close_payment("pay_1", gateway_trade_no="pi_1")
    assert (result.status, result.amount) == (ChannelStatus.SUCCEEDED, Money(1499, "USD"))


def test_closing_a_trade_stripe_never_heard_of_is_closed(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers.append(ok({"object": "search_result", "data": [], "has_more": False}))
    assert channel.close_payment("pay_1").status is ChannelStatus.CLOSED


def test_a_payment_intent_this_account_does_not_have_is_closed_not_an_endless_error(
    channel: StripeChannel, gateway: Gateway
) -> None:
    """Stripe answers 404 resource_missing for the PaymentIntent knowpay recorded (another
    account's, or one from test mode): none can be paid on this account, so the attempt is
    closed; before, every close and every query failed and the order could never close
    (found by the fuzz audit)."""
    missing = error(
        404, type="invalid_request_error", code="resource_missing", message="No such payment_intent"
    )
    gateway.answers += [missing, missing]
    assert channel.close_payment("pay_1", gateway_trade_no="pi_1").status is ChannelStatus.CLOSED
    # A query closes nothing: it knows nothing more, and the order's close will close it.
    assert channel.query_payment("pay_1", gateway_trade_no="pi_1").status is ChannelStatus.PENDING
    other_mode = error(
        404,
        type="invalid_request_error",
        code="resource_missing",
        message="No such payment_intent: 'pi_1'; a similar object exists in live mode, but a "
        "test mode key was used to make this request.",
    )
    for refusal in (other_mode, error(400, type="invalid_request_error", code="parameter_invalid")):
        # Wrong keys (the PaymentIntent may be payable on the right ones) or any other
        # refusal stay refusals: the attempt is not closed on them.
        gateway.answers += [refusal, refusal]
        with pytest.raises(ChannelDeclined):
            channel.close_payment("pay_1", gateway_trade_no="pi_1")
        with pytest.raises(ChannelDeclined):
            channel.query_payment("pay_1", gateway_trade_no="pi_1")


# Refunds -------------------------------------------------------------------------------------


def refund_request(**fields: Any) -> RefundRequest:
    base: dict[str, Any] = {
        "out_trade_no": "pay_1",
        "out_refund_no": "rfd_1",
        "amount": Money(500, "USD"),
        "total": Money(1499, "USD"),
        "reason": "duplicate_purchase",
        "notify_url": "",
        "gateway_trade_no": "pi_1",
    }
    return RefundRequest(**{**base, **fields})


def test_refund_posts_with_the_refund_number_as_key(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers.append(ok(refund(status="pending")))
    result = channel.refund(refund_request())
    assert (result.status, result.gateway_refund_no) == (ChannelStatus.PENDING, "re_1")
    assert gateway.requests[0].headers["idempotency-key"] == "knowpay:refund:rfd_1"
    assert gateway.form() == {
        "payment_intent": "pi_1",
        "amount": "500",
        "reason": "duplicate",
        "metadata[out_trade_no]": "pay_1",
        "metadata[out_refund_no]": "rfd_1",
    }
    gateway.answers.append(ok(refund()))
    channel.refund(refund_request(reason="other"))
    assert "reason" not in gateway.form()


def test_a_refused_refund_is_a_failed_result(channel: StripeChannel, gateway: Gateway) -> None:
    gateway.answers.append(
        error(400, type="invalid_request_error", code="charge_already_refunded", message="done")
    )
    result = channel.refund(refund_request())
    assert (result.status, result.failure_code) == (ChannelStatus.FAILED, "charge_already_refunded")


def test_a_refund_answer_for_another_amount_is_refused(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers.append(ok(refund(amount=499)))
    with pytest.raises(ProtocolError):
        channel.refund(refund_request())


def test_query_refund_by_id_or_by_listing_the_intents_refunds(
    channel: StripeChannel, gateway: Gateway
) -> None:
    gateway.answers.append(ok(refund()))
    found = channel.query_refund("pay_1", "rfd_1", gateway_refund_no="re_1")
    assert (found.status, gateway.requests[-1].url.path) == (
        ChannelStatus.SUCCEEDED,
        "/v1/refunds/re_1",
    )
    other = refund(id="re_0", metadata={"out_refund_no": "rfd_0"})
    failed = refund(status="failed", failure_reason="lost_or_stolen_card")
    gateway.answers += [
        ok({"object": "list", "data": [other], "has_more": True}),
        ok({"object": "list", "data": [failed], "has_more": False}),
    ]
    listed = channel.query_refund("pay_1", "rfd_1", gateway_trade_no="pi_1")
    assert (listed.status, listed.failure_code) == (ChannelStatus.FAILED, "lost_or_stolen_card")
    assert gateway.query() == {"payment_intent": "pi_1", "limit": "100", "starting_after": "re_0"}
    gateway.answers.append(ok({"object": "list", "data": [], "has_more": False}))
    assert channel.query_refund("pay_1", "rfd_9", gateway_trade_no="pi_1").status is (
        ChannelStatus.PENDING
    )


# Webhooks ------------------------------------------------------------------------------------


def webhook(event_type: str = "payment_intent.succeeded", **fields: Any) -> bytes:
    body = {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": int(NOW.timestamp()),
        "livemode": False,
        "data": {"object": intent(status="succeeded", amount_received=1499)},
        **fields,
    }
    return json.dumps(body, indent=2).encode()


def test_a_signed_webhook_is_verified_with_the_injected_clock(
    channel: StripeChannel, clock: FrozenClock
) -> None:
    body = webhook()
    header = signing.signature_header([WEBHOOK_SECRET], body, int(NOW.timestamp()))
    note = channel.verify_and_parse_notification({"Stripe-Signature": header}, body)
    assert (note.status, note.amount, note.external_id) == (
        ChannelStatus.SUCCEEDED,
        Money(1499, "USD"),
        "evt_1",
    )
    clock.advance(timedelta(seconds=301))
    with pytest.raises(SignatureInvalid):
        channel.verify_and_parse_notification({"stripe-signature": header}, body)


def test_a_signed_webhook_with_a_number_of_thousands_of_digits_is_a_protocol_error(
    channel: StripeChannel,
) -> None:
    # json.loads refuses an integer of more than 4,300 digits with a plain ValueError (not
    # JSONDecodeError): it escaped as a 500 from POST /notify/stripe.
    body = b'{"id":"evt_1","created":' + b"1" * 5000 + b"}"
    header = signing.signature_header([WEBHOOK_SECRET], body, int(NOW.timestamp()))
    with pytest.raises(ProtocolError, match="not JSON"):
        channel.verify_and_parse_notification({"Stripe-Signature": header}, body)


def test_previous_secrets_verify_during_rotation(gateway: Gateway, clock: FrozenClock) -> None:
    channel = make_channel(
        gateway,
        clock,
        webhook_secret="whsec_new",
        previous_webhook_secrets=[SecretStr("whsec_old")],
    )
    body = webhook()
    header = signing.signature_header(["whsec_old"], body, int(NOW.timestamp()))
    assert channel.verify_and_parse_notification({"stripe-signature": header}, body).status is (
        ChannelStatus.SUCCEEDED
    )
    stranger = signing.signature_header(["whsec_stranger"], body, int(NOW.timestamp()))
    with pytest.raises(SignatureInvalid):
        channel.verify_and_parse_notification({"stripe-signature": stranger}, body)


def test_a_test_mode_event_for_a_live_key_is_refused(gateway: Gateway, clock: FrozenClock) -> None:
    channel = make_channel(gateway, clock, secret_key="sk_live_123")
    body = webhook()
    header = signing.signature_header([WEBHOOK_SECRET], body, int(NOW.timestamp()))
    with pytest.raises(ProtocolError, match="livemode"):
        channel.verify_and_parse_notification({"stripe-signature": header}, body)


def test_a_signed_body_that_is_not_an_event_is_a_protocol_error(channel: StripeChannel) -> None:
    for body in (b"not json", b"[1, 2]"):
        header = signing.signature_header([WEBHOOK_SECRET], body, int(NOW.timestamp()))
        with pytest.raises(ProtocolError):
            channel.verify_and_parse_notification({"stripe-signature": header}, body)


# Bills, profile, building --------------------------------------------------------------------


def test_the_bill_pages_through_the_days_balance_transactions(
    channel: StripeChannel, gateway: Gateway
) -> None:
    charge = {"id": "ch_1", "object": "charge", "amount": 1499, "currency": "usd",
              "payment_intent": "pi_1", "metadata": {"out_trade_no": "pay_1"}}  # fmt: skip
    txn_charge = {"id": "txn_2", "type": "charge", "created": int(NOW.timestamp()),
                  "amount": 1499, "currency": "usd", "source": charge}  # fmt: skip
    txn_refund = {"id": "txn_3", "type": "refund", "created": int(NOW.timestamp()) + 60,
                  "amount": -500, "currency": "usd", "source": refund()}  # fmt: skip
    fee = {"id": "txn_1", "type": "stripe_fee", "created": 1, "amount": -30, "currency": "usd"}
    gateway.answers += [
        ok({"object": "list", "data": [txn_refund, fee], "has_more": True}),
        ok({"object": "list", "data": [txn_charge], "has_more": False}),
    ]
    bill = channel.fetch_bill(date(2026, 3, 1))
    assert [(line.kind, line.amount) for line in bill.lines] == [
        ("payment", Money(1499, "USD")),
        ("refund", Money(500, "USD")),
    ]
    first = dict(gateway.requests[0].url.params)
    assert first == {
        "created[gte]": str(int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())),
        "created[lt]": str(int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())),
        "limit": "100",
        "expand[0]": "data.source",
    }
    assert gateway.query()["starting_after"] == "txn_1"


def test_the_profile_comes_from_the_settings(gateway: Gateway, clock: FrozenClock) -> None:
    channel = make_channel(gateway, clock, currencies=["usd", "JPY"], countries=["us"])
    profile = channel.profile
    assert profile.currencies == frozenset({"USD", "JPY"})
    assert profile.countries == frozenset({"US"})
    assert profile.can_charge(50, "USD")
    assert not profile.can_charge(49, "USD")
    assert not profile.can_charge(100_000_000, "JPY")
    assert not profile.can_charge(1000, "EUR")
    with pytest.raises(ValueError, match="CURRENCIES"):
        make_channel(gateway, clock, currencies=["ZZZ"])


def test_the_channel_exists_only_when_enabled_with_both_secrets() -> None:
    assert build_channels(load_settings(), FrozenClock()) == {}
    configured = load_settings(stripe=stripe_settings())
    assert list(build_channels(configured, FrozenClock())) == ["stripe"]
    assert build_channels(load_settings(stripe=stripe_settings(enabled=False)), FrozenClock()) == {}
    no_hook = load_settings(stripe=stripe_settings(webhook_secret=None))
    assert build_channels(no_hook, FrozenClock()) == {}


def test_forms_are_encoded_the_way_stripe_reads_them() -> None:
    assert encode_form(
        {"a": 1, "b": True, "c": None, "m": {"k": "v", "n": {"x": False}}, "e": ["p", "q"]}
    ) == [
        ("a", "1"),
        ("b", "true"),
        ("m[k]", "v"),
        ("m[n][x]", "false"),
        ("e[0]", "p"),
        ("e[1]", "q"),
    ]
