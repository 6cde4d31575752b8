"""The Stripe simulator on its own (in-process): keys, idempotency, Stripe's error shapes
and status rules, search, lists, expand, faults and the payer page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.sandbox.app import SandboxConfig
from knowpay.sandbox.stripe import create_app, forms

BASE = "http://sim.test/stripe"


@pytest.fixture
def sim() -> Iterator[TestClient]:
    config = SandboxConfig(
        public_url="http://sim.test",
        time_scale=1.0,
        gateways={"stripe": {"secret_key": "sk_test_sim", "publishable_key": "pk_test_sim",
                             "webhook_url": "http://127.0.0.1:9/hook"}},
    )  # fmt: skip
    outer = FastAPI()
    outer.mount("/stripe", create_app(config))  # as the sandbox app mounts it
    with TestClient(outer, base_url=BASE) as client:
        yield client


def auth(key: str = "sk_test_sim") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(sim: TestClient, key: str | None = None, **params: Any) -> httpx.Response:
    body = {"amount": "1499", "currency": "usd", "metadata[out_trade_no]": "pay_1", **params}
    headers = auth() | ({"Idempotency-Key": key} if key else {})
    return sim.post("/v1/payment_intents", data=body, headers=headers)


def confirm(
    sim: TestClient, intent: dict[str, Any], method: str = "pm_card_visa"
) -> httpx.Response:
    return sim.post(
        f"/v1/payment_intents/{intent['id']}/confirm",
        data={"payment_method": method},
        headers=auth(),
    )


def test_the_keys_name_the_api_and_the_payer_page(sim: TestClient) -> None:
    keys = sim.get("/_keys").json()
    assert (keys["secret_key"], keys["publishable_key"]) == ("sk_test_sim", "pk_test_sim")
    assert keys["webhook_secret"].startswith("whsec_")
    assert keys["webhook_url"] == "http://127.0.0.1:9/hook"
    assert keys["base_url"] == BASE
    assert keys["payer_page_url"] == (
        f"{BASE}/pay/{{id}}?client_secret={{client_secret}}&return_url={{return_url}}"
    )


def test_a_payment_intent_has_stripes_shape(sim: TestClient) -> None:
    response = create(sim)
    assert response.status_code == 200, response.text
    assert response.headers["request-id"].startswith("req_")
    intent = response.json()
    assert intent["object"] == "payment_intent"
    assert intent["id"].startswith("pi_")
    assert intent["client_secret"].startswith(f"{intent['id']}_secret_")
    assert (intent["amount"], intent["currency"], intent["status"]) == (
        1499,
        "usd",
        "requires_payment_method",
    )
    assert intent["metadata"] == {"out_trade_no": "pay_1"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "You did not provide an API key"),
        (auth("sk_test_wrong_key_123"), "Invalid API Key provided"),
        (auth("pk_test_sim"), "cannot be made with a publishable API key"),
    ],
)
def test_keys_are_checked(sim: TestClient, headers: dict[str, str], message: str) -> None:
    response = sim.post("/v1/payment_intents", data={"amount": "100", "currency": "usd"},
                        headers=headers)  # fmt: skip
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_basic_auth_with_the_key_as_user_works(sim: TestClient) -> None:
    response = sim.get("/v1/events", auth=("sk_test_sim", ""))
    assert response.status_code == 200


def test_the_same_idempotency_key_and_params_replay_the_first_answer(sim: TestClient) -> None:
    first = create(sim, key="k1")
    again = create(sim, key="k1")
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    different = create(sim, key="k1", amount="2000")
    assert different.status_code == 400
    assert different.json()["error"]["type"] == "idempotency_error"
    assert create(sim).json()["id"] != create(sim).json()["id"]  # no key: two intents


def test_an_errors_answer_is_replayed_too(sim: TestClient) -> None:
    refused = create(sim, key="k2", amount="10")
    assert refused.json()["error"]["code"] == "amount_too_small"
    assert create(sim, key="k2", amount="10").headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"amount": "49"}, "amount_too_small"),
        ({"amount": "100000000"}, "amount_too_large"),
        ({"amount": "12.5"}, "parameter_invalid_integer"),
        ({"currency": "isk", "amount": "550"}, "invalid_charge_amount_no_decimal_compatible"),
        ({"surprise": "1"}, "parameter_unknown"),
    ],
)
def test_bad_parameters_are_refused_as_stripe_refuses_them(
    sim: TestClient, params: dict[str, str], code: str
) -> None:
    response = create(sim, **params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_currencies_must_be_lower_case(sim: TestClient) -> None:
    response = create(sim, currency="USD")
    assert (response.status_code, response.json()["error"]["param"]) == (400, "currency")


def test_a_declined_card_returns_402_and_leaves_the_intent_payable(sim: TestClient) -> None:
    intent = create(sim).json()
    declined = confirm(sim, intent, "pm_card_chargeDeclined")
    assert declined.status_code == 402
    error = declined.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error["payment_intent"]["status"] == "requires_payment_method"
    current = sim.get(f"/v1/payment_intents/{intent['id']}", headers=auth()).json()
    assert current["last_payment_error"]["code"] == "card_declined"
    paid = confirm(sim, intent)
    assert (paid.json()["status"], paid.json()["amount_received"]) == ("succeeded", 1499)
    again = confirm(sim, intent)
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"
    cancel = sim.post(f"/v1/payment_intents/{intent['id']}/cancel", headers=auth())
    assert cancel.json()["error"]["code"] == "payment_intent_unexpected_state"


def test_stripe_js_confirms_with_the_publishable_key_and_the_client_secret(
    sim: TestClient,
) -> None:
    intent = create(sim).json()
    wrong = sim.post(
        f"/v1/payment_intents/{intent['id']}/confirm",
        data={
            "key": "pk_test_sim",
            "client_secret": "pi_x_secret_y",
            "payment_method": "pm_card_visa",
        },
    )
    assert wrong.status_code == 400
    right = sim.post(
        f"/v1/payment_intents/{intent['id']}/confirm",
        data={"key": "pk_test_sim", "client_secret": intent["client_secret"],
              "payment_method_data[type]": "card",
              "payment_method_data[card][number]": "4242 4242 4242 4242"},
    )  # fmt: skip
    assert right.status_code == 200, right.text
    assert right.json()["status"] == "succeeded"
    assert right.json()["metadata"] == {}  # Stripe.js sees no metadata


def test_expand_search_and_lists(sim: TestClient) -> None:
    intent = create(sim, **{"metadata[out_trade_no]": "pay_search"}).json()
    confirm(sim, intent)
    expanded = sim.get(
        f"/v1/payment_intents/{intent['id']}", params={"expand[]": "latest_charge"}, headers=auth()
    ).json()
    assert expanded["latest_charge"]["object"] == "charge"
    assert expanded["latest_charge"]["metadata"] == {"out_trade_no": "pay_search"}
    found = sim.get(
        "/v1/payment_intents/search",
        params={"query": "metadata['out_trade_no']:'pay_search' AND status:'succeeded'"},
        headers=auth(),
    ).json()
    assert (found["object"], [i["id"] for i in found["data"]]) == ("search_result", [intent["id"]])
    unsupported = sim.get("/v1/payment_intents/search", params={"query": "amount:'1'"},
                          headers=auth())  # fmt: skip
    assert unsupported.status_code == 400
    for amount in ("100", "200", "300"):
        sim.post("/v1/refunds", data={"payment_intent": intent["id"], "amount": amount},
                 headers=auth())  # fmt: skip
    page = sim.get("/v1/refunds", params={"payment_intent": intent["id"], "limit": "2"},
                   headers=auth()).json()  # fmt: skip
    assert ([r["amount"] for r in page["data"]], page["has_more"]) == ([300, 200], True)
    rest = sim.get("/v1/refunds", params={"payment_intent": intent["id"], "limit": "2",
                   "starting_after": page["data"][-1]["id"]}, headers=auth()).json()  # fmt: skip
    assert ([r["amount"] for r in rest["data"]], rest["has_more"]) == ([100], False)
    txns = sim.get("/v1/balance_transactions", params={"expand[0]": "data.source"},
                   headers=auth()).json()  # fmt: skip
    assert {t["source"]["object"] for t in txns["data"]} == {"charge", "refund"}


def test_refunds_cannot_exceed_what_was_charged(sim: TestClient) -> None:
    intent = create(sim).json()
    unpaid = sim.post("/v1/refunds", data={"payment_intent": intent["id"]}, headers=auth())
    assert unpaid.json()["error"]["code"] == "charge_not_refundable"
    confirm(sim, intent)
    too_much = sim.post("/v1/refunds", data={"payment_intent": intent["id"], "amount": "1500"},
                        headers=auth())  # fmt: skip
    assert too_much.json()["error"]["code"] == "amount_too_large"
    full = sim.post("/v1/refunds", data={"payment_intent": intent["id"], "reason": "duplicate"},
                    headers=auth()).json()  # fmt: skip
    assert (full["amount"], full["status"], full["reason"]) == (1499, "succeeded", "duplicate")
    again = sim.post("/v1/refunds", data={"payment_intent": intent["id"]}, headers=auth())
    assert again.json()["error"]["code"] == "charge_already_refunded"


def test_events_record_every_change(sim: TestClient) -> None:
    intent = create(sim, key="evt-key").json()
    confirm(sim, intent)
    events = sim.get("/v1/events", params={"limit": "100"}, headers=auth()).json()["data"]
    mine = [e for e in events if e["data"]["object"].get("id") == intent["id"]]
    assert [e["type"] for e in reversed(mine)] == [
        "payment_intent.created",
        "payment_intent.succeeded",
    ]
    created = mine[-1]
    assert created["request"]["idempotency_key"] == "evt-key"
    assert created["object"] == "event"
    assert created["id"].startswith("evt_")
    notes = sim.get("/_notifications", params={"out_trade_no": "pay_1"}).json()
    assert {n["type"] for n in notes} >= {"payment_intent.created", "payment_intent.succeeded"}


def test_api_faults(sim: TestClient) -> None:
    sim.post("/_faults", json={"kind": "http_5xx", "times": 1, "status": 503,
                               "operations": ["create_payment_intent"]})  # fmt: skip
    failed = create(sim, key="f1")
    assert failed.status_code == 503
    assert failed.json()["error"]["type"] == "api_error"
    assert create(sim, key="f1").status_code == 200  # nothing was stored for the key
    sim.post("/_faults", json={"kind": "timeout", "times": 1, "seconds": 0.3})
    started = time.monotonic()
    slow = create(sim, key="f2")
    assert time.monotonic() - started >= 0.3
    assert create(sim, key="f2").json()["id"] == slow.json()["id"]
    assert [r["replayed"] for r in sim.get("/_requests").json()][-2:] == [False, True]


def test_the_payer_page_posts_a_card_and_sends_the_payer_back(sim: TestClient) -> None:
    intent = create(sim).json()
    page = sim.get(f"/pay/{intent['id']}", params={"client_secret": intent["client_secret"]})
    assert page.status_code == 200
    assert "14.99 USD" in page.text
    assert 'name="key" value="pk_test_sim"' in page.text
    assert sim.get(f"/pay/{intent['id']}", params={"client_secret": "nope"}).status_code == 404
    form = {"key": "pk_test_sim", "client_secret": intent["client_secret"],
            "return_url": "https://shop.example/done?o=1"}  # fmt: skip
    declined = sim.post(f"/pay/{intent['id']}", data={**form, "card_number": "4000000000000002"})
    assert declined.status_code == 402
    assert "Your card was declined." in declined.text
    paid = sim.post(
        f"/pay/{intent['id']}",
        data={**form, "card_number": "4242 4242 4242 4242"},
        follow_redirects=False,
    )
    assert paid.status_code == 303
    location = httpx.URL(paid.headers["location"])
    assert (location.host, location.params["o"], location.params["redirect_status"]) == (
        "shop.example",
        "1",
        "succeeded",
    )
    assert location.params["payment_intent"] == intent["id"]


def test_nested_forms_are_read_the_way_stripe_reads_them() -> None:
    parsed = forms.parse(
        "amount=100&metadata[a]=1&metadata[b]=&expand[]=x&expand[]=y&items[0][p]=q&card[n][m]=z"
    )
    assert parsed == {
        "amount": "100",
        "metadata": {"a": "1", "b": ""},
        "expand": ["x", "y"],
        "items": [{"p": "q"}],
        "card": {"n": {"m": "z"}},
    }
    with pytest.raises(forms.FormError):
        forms.parse("a=1&a[b]=2")
