"""Found by fuzzing the running demo over HTTP (schemathesis against /openapi.json): answers
the schema did not document."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from knowpay.channels.errors import ChannelDeclined, ProtocolError
from tests.builders import Builders, Shop
from tests.openapi_conformance import assert_documented


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise ChannelDeclined("resource_missing", "No such payment_intent: 'pi_gone'")


def _out_of_protocol(*_args: Any, **_kwargs: Any) -> Any:
    raise ProtocolError("the PaymentIntent came without its client_secret")


@pytest.mark.parametrize("call", ["create_payment", "close_payment", "query_payment"])
def test_a_gateway_refusing_or_garbling_the_call_is_a_documented_502(
    app: FastAPI, build: Builders, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    # The demo's Stripe simulator forgets its PaymentIntents when it restarts: closing an order
    # with a pending Stripe attempt then answered 502 gateway_error, which POST
    # /v1/orders/{order_id}/close did not document (nor did the payment's create, for an
    # answer out of protocol, or its sync).
    shop = Shop(build)
    order = shop.order()
    payment = None if call == "create_payment" else shop.pay(order)
    channel = app.state.channel_registry.adapter("test")
    monkeypatch.setattr(channel, call, _out_of_protocol if call == "create_payment" else _refuse)
    if call == "create_payment":
        path = "/v1/orders/{order_id}/payments"
        url, body = f"/v1/orders/{order['id']}/payments", {"channel": "test"}
    elif call == "close_payment":
        path, url, body = "/v1/orders/{order_id}/close", f"/v1/orders/{order['id']}/close", None
    else:
        assert payment is not None
        path = "/v1/payments/{payment_id}/sync"
        url, body = f"/v1/payments/{payment['id']}/sync", None
    response = shop.client.post(url, json=body, headers=shop.app.headers)
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "gateway_error"
    assert_documented(app, "POST", path, response)
