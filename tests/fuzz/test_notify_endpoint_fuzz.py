"""POST /notify/{gateway} over HTTP, through the app, with every gateway configured (test keys;
PayPal in postback mode with PayPal unreachable, so that its deliberate 503 is exercised).

Whatever a gateway's door receives — random bytes and headers, or fuzzed content signed with
the test keys (so that it gets verified, stored and dispatched) — the answer is the gateway's
own accept or refuse answer (its adapter's `notification_ack`), or PayPal's 503 "try again
later"; never another 5xx. The test gateway's notifications name a real pending payment, so
fuzzed amounts and statuses reach the payment and ledger code behind the door.

Size: 10 examples per test and gateway, scaled by KNOWPAY_FUZZ_EXAMPLES (tests/fuzz/support.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from knowpay.app import create_app
from knowpay.channels.types import NotificationAck
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import derive_key
from knowpay.kit.db import Database
from tests.builders import Builders, Shop
from tests.fuzz import gateways, mutations
from tests.fuzz.gateways import Headers, Signed
from tests.fuzz.support import fuzz_examples, record

EXAMPLES = fuzz_examples(default=10)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one app for all examples, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
GATEWAYS = ("test", "alipay", "wechatpay", "unionpay", "stripe", "paypal")
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once


@pytest.fixture
def settings_with_gateways(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "alipay": gateways.alipay_settings(),
            "wechatpay": gateways.wechatpay_settings(),
            "unionpay": gateways.unionpay_settings(),
            "stripe": gateways.stripe_settings(),
            "paypal": gateways.paypal_settings(verify_mode="postback", base_url=UNREACHABLE),
        }
    )


@pytest.fixture
def app(settings_with_gateways: Settings, clock: FrozenClock, database: Database) -> FastAPI:
    """The conftest's app, with every gateway configured."""
    return create_app(settings_with_gateways, clock=clock, database=database, run_worker=False)


@dataclass
class Door:
    client: TestClient
    signed: dict[str, Signed]
    answers: dict[str, list[NotificationAck]]

    def post(self, gateway: str, headers: Headers, body: bytes) -> None:
        response = self.client.post(f"/notify/{gateway}", content=body, headers=_wire(headers))
        record(f"/notify/{gateway}", response.status_code)
        expected = self.answers[gateway]
        assert any(_is(response, answer) for answer in expected), (
            f"/notify/{gateway} answered {response.status_code} "
            f"{response.headers.get('content-type')} {response.content[:200]!r}"
        )


def _wire(headers: Headers) -> dict[bytes, bytes]:
    """Headers as HTTP carries them: bytes (here UTF-8, which the app reads as latin-1), and
    no line breaks or NULs (a server refuses those before any application sees them)."""
    return {
        name.encode("latin-1"): value.translate(_NOT_ON_THE_WIRE).encode("utf-8")
        for name, value in headers.items()
    }


_NOT_ON_THE_WIRE = str.maketrans("\r\n\x00", "   ")


def _is(response: Any, answer: NotificationAck) -> bool:
    if response.status_code != answer.status_code or response.content != answer.body:
        return False
    content_type = response.headers.get("content-type", "")
    return not answer.body or content_type.startswith(answer.content_type)


@pytest.fixture
def door(
    app: FastAPI,
    client: TestClient,
    build: Builders,
    settings_with_gateways: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Door:
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _seconds: None)
    shop = Shop(build)
    payment = shop.pay(shop.order())
    key = derive_key(
        settings_with_gateways.secret_key.get_secret_value(), "knowpay/test-channel/v1"
    )
    test = gateways.test_gateway(key)
    real = {
        **test.content,
        "out_trade_no": payment["id"],
        "gateway_trade_no": "test_" + payment["id"],
    }
    signed = {
        "test": Signed("test", real, test.sign),
        "alipay": gateways.alipay(),
        "wechatpay": gateways.wechatpay(),
        "unionpay": gateways.unionpay(),
        "stripe": gateways.stripe(),
        "paypal": gateways.paypal(),
    }
    registry = app.state.channel_registry
    answers: dict[str, list[NotificationAck]] = {}
    for gateway in GATEWAYS:
        channel = registry.for_gateway(gateway)
        assert channel is not None, f"{gateway} is not configured"
        answers[gateway] = [channel.notification_ack(True), channel.notification_ack(False)]
    try_later = b'{"error": "verification unavailable, retry"}'  # PayPal's postback is down
    answers["paypal"].append(NotificationAck(503, try_later, "application/json"))
    return Door(client, signed, answers)


def test_a_genuine_notification_is_accepted(door: Door) -> None:
    for gateway in GATEWAYS:
        door.post(gateway, *door.signed[gateway].valid())


@pytest.mark.parametrize("gateway", GATEWAYS)
@FUZZ
@given(
    headers=st.sampled_from(list(gateways.SIGNATURE_HEADERS.values())).flatmap(
        mutations.random_headers
    ),
    body=mutations.random_bodies,
)
@example(headers={}, body=mutations.JSON_BOMB)
@example(headers=dict.fromkeys(gateways.SIGNATURE_HEADERS["paypal"], "x"), body=mutations.JSON_BOMB)
@example(headers={"stripe-signature": "t=\u00b2,v1=00"}, body=b"{}")
def test_random_notifications_get_the_gateways_answer(
    door: Door, gateway: str, headers: Headers, body: bytes
) -> None:
    door.post(gateway, headers, body)


@pytest.mark.parametrize("gateway", GATEWAYS)
@FUZZ
@given(data=st.data())
def test_fuzzed_signed_notifications_get_the_gateways_answer(
    door: Door, gateway: str, data: Any
) -> None:
    signed = door.signed[gateway]
    content = data.draw(mutations.mutated_content(signed))
    door.post(gateway, *signed.sign(content))


@pytest.mark.parametrize("gateway", ["test", "stripe"])
def test_every_tricky_value_gets_the_gateways_answer(door: Door, gateway: str) -> None:
    """Each field of a genuine notification set to each tricky value, signed: verified,
    stored and dispatched (the test gateway's name a real payment). Found this way: a lone
    surrogate in an id (a 500 when stored), and a 200 kB value that the log masking took
    minutes over (kit/masking.py)."""
    signed = door.signed[gateway]
    for content in mutations.every_tricky_field(signed):
        door.post(gateway, *signed.sign(content))


def test_tricky_amounts_for_a_real_payment(door: Door) -> None:
    """The test gateway's notification for a real pending payment, with amounts it must
    refuse or record (the ledger and payments code behind the door)."""
    signed = door.signed["test"]
    for amount in ("99.00", "0.00", "-99.00", "9" * 30 + ".00", "99.001", "1e3", "99.0"):
        for kind in ("payment.succeeded", "payment.failed"):
            content = {**signed.content, "amount": amount, "type": kind, "id": f"evt_{amount}"}
            door.post("test", *signed.sign(content))
