"""The PayPal simulator keeps PayPal's rules (in process, no knowpay code involved): OAuth,
PayPal-Request-Id replays, capture only after approval and only once, PayPal's decimals,
what PATCH may change, refund limits, the approval page's redirects, and webhook signatures
that verify with the served certificate — by postback only over the event's exact bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.sandbox.app import SandboxConfig
from knowpay.sandbox.paypal import create_app
from knowpay.sandbox.paypal import crypto as gateway
from knowpay.sandbox.paypal.notifier import RETRY_DELAYS_S, Delivery
from knowpay.sandbox.paypal.simulator import PayPalSimulator, default_webhook_url

CLIENT_ID, SECRET, WEBHOOK_ID = "client-1", "secret-1", "WEBHOOK1"


@pytest.fixture
def simulator() -> Iterator[tuple[TestClient, PayPalSimulator]]:
    config = SandboxConfig(
        public_url="http://sandbox.test",
        gateways={
            "paypal": {
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "webhook_id": WEBHOOK_ID,
                "webhook_url": "http://127.0.0.1:9/n",
            }
        },
    )
    app = create_app(config)
    mounted = FastAPI()
    mounted.mount("/paypal", app)  # as the sandbox app mounts it
    with TestClient(mounted, base_url="http://sandbox.test/paypal") as client:
        yield client, app.state.simulator


@pytest.fixture
def client(simulator: tuple[TestClient, PayPalSimulator]) -> TestClient:
    token = simulator[0].post(
        "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, SECRET)
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "Bearer"
    simulator[0].headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return simulator[0]


def _create(client: TestClient, value: str = "88.88", currency: str = "USD", **body: Any) -> Any:
    payload = {
        "intent": "CAPTURE",
        "purchase_units": [
            {"invoice_id": "pay_1", "amount": {"currency_code": currency, "value": value}}
        ],
        "application_context": {
            "return_url": "https://pay.example/return/pay_1?x=1",
            "cancel_url": "https://pay.example/return/pay_1",
        },
        **body,
    }
    return client.post(
        "/v2/checkout/orders", json=payload, headers={"Prefer": "return=representation"}
    )


def _capture(client: TestClient, order_id: str, request_id: str) -> Any:
    return client.post(
        f"/v2/checkout/orders/{order_id}/capture",
        json={},
        headers={"PayPal-Request-Id": request_id, "Prefer": "return=representation"},
    )


def _issue(response: Any) -> str:
    return str(response.json()["details"][0]["issue"])


def test_tokens_need_the_apps_credentials(simulator: tuple[TestClient, PayPalSimulator]) -> None:
    raw = simulator[0]
    wrong = raw.post(
        "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "nope")
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert raw.get("/v2/checkout/orders/X").status_code == 401
    assert simulator[1].expire_tokens() == 0


def test_calls_need_a_live_token(
    client: TestClient, simulator: tuple[TestClient, PayPalSimulator]
) -> None:
    assert client.get("/v2/checkout/orders/UNKNOWN").status_code == 404
    simulator[1].expire_tokens()
    expired = client.get("/v2/checkout/orders/UNKNOWN")
    assert (expired.status_code, expired.json()["error"]) == (401, "invalid_token")


def test_a_create_repeated_with_its_request_id_is_the_same_order(client: TestClient) -> None:
    headers = {"PayPal-Request-Id": "create-1", "Prefer": "return=representation"}
    body = {
        "intent": "CAPTURE",
        "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.00"}}],
    }
    first = client.post("/v2/checkout/orders", json=body, headers=headers)
    again = client.post("/v2/checkout/orders", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other = client.post("/v2/checkout/orders", json=body, headers={"PayPal-Request-Id": "2"})
    assert other.json()["id"] != first.json()["id"]
    assert set(other.json()) == {"id", "status", "links"}  # minimal without Prefer


@pytest.mark.parametrize(
    ("currency", "value", "issue"),
    [
        ("JPY", "1000.00", "DECIMAL_PRECISION"),
        ("USD", "1.234", "DECIMAL_PRECISION"),
        ("USD", "-1.00", "INVALID_PARAMETER_VALUE"),
        ("USD", "1e3", "INVALID_PARAMETER_VALUE"),
        ("XYZ", "1.00", "CURRENCY_NOT_SUPPORTED"),
    ],
)
def test_amounts_follow_paypals_rules(
    client: TestClient, currency: str, value: str, issue: str
) -> None:
    refused = _create(client, value, currency)
    assert (refused.status_code, _issue(refused)) == (422, issue)


def test_yen_without_decimals_are_taken(client: TestClient) -> None:
    created = _create(client, "1000", "JPY")
    assert created.json()["purchase_units"][0]["amount"] == {
        "currency_code": "JPY",
        "value": "1000",
    }


def test_the_approval_link_depends_on_how_the_order_asks_for_it(client: TestClient) -> None:
    old = _create(client).json()
    assert old["status"] == "CREATED"
    assert [link["rel"] for link in old["links"]] == ["self", "approve", "update", "capture"]
    source = {
        "paypal": {"experience_context": {"return_url": "https://r", "cancel_url": "https://c"}}
    }
    new = _create(client, payment_source=source).json()
    assert new["status"] == "PAYER_ACTION_REQUIRED"
    assert "payer-action" in [link["rel"] for link in new["links"]]


def test_capture_only_after_approval_and_only_once(
    client: TestClient, simulator: tuple[TestClient, PayPalSimulator]
) -> None:
    order_id = _create(client).json()["id"]
    early = _capture(client, order_id, "cap-1")
    assert (early.status_code, early.json()["name"], _issue(early)) == (
        422,
        "UNPROCESSABLE_ENTITY",
        "ORDER_NOT_APPROVED",
    )
    simulator[1].approve(order_id)
    first = _capture(client, order_id, "cap-1")
    assert first.status_code == 201
    [capture] = first.json()["purchase_units"][0]["payments"]["captures"]
    assert (capture["status"], capture["invoice_id"]) == ("COMPLETED", "pay_1")
    replay = _capture(client, order_id, "cap-1")
    assert (replay.status_code, replay.json()) == (200, first.json())
    second = _capture(client, order_id, "cap-2")
    assert (second.status_code, _issue(second)) == (422, "ORDER_ALREADY_CAPTURED")
    shown = client.get(f"/v2/payments/captures/{capture['id']}").json()
    assert shown["supplementary_data"] == {"related_ids": {"order_id": order_id}}


def test_patch_changes_an_order_only_while_created_or_approved(
    client: TestClient, simulator: tuple[TestClient, PayPalSimulator]
) -> None:
    order_id = _create(client).json()["id"]
    patch = [
        {
            "op": "replace",
            "path": "/purchase_units/@reference_id=='default'/custom_id",
            "value": "closed",
        }
    ]
    assert client.patch(f"/v2/checkout/orders/{order_id}", json=patch).status_code == 204
    assert (
        client.get(f"/v2/checkout/orders/{order_id}").json()["purchase_units"][0]["custom_id"]
        == "closed"
    )
    bad_path = [{"op": "replace", "path": "/intent", "value": "AUTHORIZE"}]
    refused = client.patch(f"/v2/checkout/orders/{order_id}", json=bad_path)
    assert (refused.status_code, _issue(refused)) == (422, "NOT_PATCHABLE")
    simulator[1].approve(order_id)
    _capture(client, order_id, "cap-x")
    done = client.patch(f"/v2/checkout/orders/{order_id}", json=patch)
    assert (done.status_code, _issue(done)) == (422, "ORDER_COMPLETED_OR_VOIDED")
    source = {"paypal": {"experience_context": {"return_url": "https://r"}}}
    waiting = _create(client, payment_source=source).json()["id"]
    refused = client.patch(f"/v2/checkout/orders/{waiting}", json=patch)
    assert refused.status_code == 422


def test_refunds_up_to_what_was_captured(
    client: TestClient, simulator: tuple[TestClient, PayPalSimulator]
) -> None:
    order_id = _create(client).json()["id"]
    simulator[1].approve(order_id)
    captured = _capture(client, order_id, "cap-r").json()
    capture_id = captured["purchase_units"][0]["payments"]["captures"][0]["id"]

    def refund(value: str | None, request_id: str) -> Any:
        body = {"amount": {"currency_code": "USD", "value": value}} if value else {}
        return client.post(
            f"/v2/payments/captures/{capture_id}/refund",
            json={**body, "custom_id": request_id},
            headers={"PayPal-Request-Id": request_id, "Prefer": "return=representation"},
        )

    partial = refund("80.00", "r1")
    assert (partial.status_code, partial.json()["status"]) == (201, "COMPLETED")
    assert refund("80.00", "r1").json()["id"] == partial.json()["id"]  # a replay
    too_much = refund("10.00", "r2")
    assert (too_much.status_code, _issue(too_much)) == (422, "REFUND_AMOUNT_EXCEEDED")
    rest = refund(None, "r3")
    assert rest.json()["amount"] == {"currency_code": "USD", "value": "8.88"}
    assert client.get(f"/v2/payments/captures/{capture_id}").json()["status"] == "REFUNDED"
    assert _issue(refund("1.00", "r4")) == "CAPTURE_FULLY_REFUNDED"
    shown = client.get(f"/v2/payments/refunds/{partial.json()['id']}").json()
    assert shown["links"][1]["href"].endswith(f"/v2/payments/captures/{capture_id}")


def test_the_approval_page_sends_the_browser_back_with_token_and_payer_id(
    client: TestClient,
) -> None:
    order_id = _create(client).json()["id"]
    page = client.get(f"/checkoutnow?token={order_id}")
    assert "Pay Now" in page.text
    back = client.post(
        f"/checkoutnow?token={order_id}", data={"action": "approve"}, follow_redirects=False
    )
    assert back.status_code == 303
    location = back.headers["location"]
    assert location.startswith(f"https://pay.example/return/pay_1?x=1&token={order_id}&PayerID=")
    assert client.get(f"/v2/checkout/orders/{order_id}").json()["status"] == "APPROVED"
    again = client.get(f"/checkoutnow?token={order_id}")
    assert again.status_code == 409


def test_cancel_goes_back_with_the_token_only(client: TestClient) -> None:
    order_id = _create(client).json()["id"]
    back = client.post(
        f"/checkoutnow?token={order_id}", data={"action": "cancel"}, follow_redirects=False
    )
    assert back.headers["location"] == f"https://pay.example/return/pay_1?token={order_id}"
    assert client.get(f"/v2/checkout/orders/{order_id}").json()["status"] == "CREATED"


def _transmission(sim: PayPalSimulator, **fields: Any) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {"id": "WH-1", "event_type": "X", "resource": {"id": "R"}}, separators=(",", ":")
    ).encode()
    delivery = Delivery("d", "WH-1", "X", "pay_1", WEBHOOK_ID, "http://x", body, **fields)
    return sim._transmit(delivery)


def test_webhooks_are_signed_with_the_served_certificate(
    client: TestClient, simulator: tuple[TestClient, PayPalSimulator]
) -> None:
    sim = simulator[1]
    headers, body = _transmission(sim)
    assert headers["PAYPAL-AUTH-ALGO"] == "SHA256withRSA"
    pem = client.get(headers["PAYPAL-CERT-URL"].removeprefix(sim.base_url))
    certificate = x509.load_pem_x509_certificate(pem.content)
    message = gateway.message(
        headers["PAYPAL-TRANSMISSION-ID"], headers["PAYPAL-TRANSMISSION-TIME"], WEBHOOK_ID, body
    )
    assert gateway.verify(message, headers["PAYPAL-TRANSMISSION-SIG"], certificate)
    forged, _ = _transmission(sim, faults=frozenset({"forged_signature"}))
    forged_message = gateway.message(
        forged["PAYPAL-TRANSMISSION-ID"], forged["PAYPAL-TRANSMISSION-TIME"], WEBHOOK_ID, body
    )
    assert not gateway.verify(forged_message, forged["PAYPAL-TRANSMISSION-SIG"], certificate)


def _postback(headers: dict[str, str], event: bytes, webhook_id: str = WEBHOOK_ID) -> bytes:
    head = {
        "auth_algo": headers["PAYPAL-AUTH-ALGO"],
        "cert_url": headers["PAYPAL-CERT-URL"],
        "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
        "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
        "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
        "webhook_id": webhook_id,
    }
    return json.dumps(head).encode()[:-1] + b', "webhook_event": ' + event + b"}"


def test_postback_verifies_only_the_exact_event_for_this_apps_webhook(
    client: TestClient, simulator: tuple[TestClient, PayPalSimulator]
) -> None:
    headers, body = _transmission(simulator[1])

    def status(raw: bytes) -> str:
        answer = client.post("/v1/notifications/verify-webhook-signature", content=raw)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["verification_status"])

    assert status(_postback(headers, body)) == "SUCCESS"
    reserialised = json.dumps(json.loads(body)).encode()  # same data, other bytes
    assert status(_postback(headers, reserialised)) == "FAILURE"
    assert status(_postback(headers, body, webhook_id="OTHER")) == "FAILURE"
    assert (
        client.post("/v1/notifications/verify-webhook-signature", content=b"{").status_code == 400
    )


def test_the_retry_schedule_is_25_retries_over_about_three_days() -> None:
    assert len(RETRY_DELAYS_S) == 25
    assert 71 * 3600 < sum(RETRY_DELAYS_S) < 73 * 3600


def test_webhooks_default_to_knowpay_around_the_sandbox() -> None:
    assert default_webhook_url("http://shop:8000/sandbox") == "http://shop:8000/notify/paypal"
    assert default_webhook_url("http://127.0.0.1:8100") == "http://127.0.0.1:8000/notify/paypal"
