"""Found by fuzzing (tests/fuzz/test_api_fuzz.py): answers /openapi.json did not document,
on the gateways' door (their own formats) and the test gateway's sandbox."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.channels.testchannel import signing
from knowpay.gateway_notifications.models import InboundNotification
from knowpay.kit.crypto import derive_key
from knowpay.kit.db import Database
from tests.builders import Builders, Shop
from tests.openapi_conformance import assert_documented
from tests.statements import statements_sent

NOTIFY = "/notify/{gateway}"
CONFIRM = "/sandbox/test/payments/{payment_id}/confirm"


def test_a_refused_notification_is_answered_in_the_gateways_documented_format(
    app: FastAPI, client: TestClient
) -> None:
    response = client.post(
        "/notify/test", content=b"{}", headers={"Knowpay-Test-Signature": "t=1,v1=00"}
    )
    assert (response.status_code, response.json()) == (400, {"received": False})
    assert_documented(app, "POST", NOTIFY, response)


def test_a_notification_for_an_unknown_gateway_is_a_documented_404(
    app: FastAPI, client: TestClient
) -> None:
    response = client.post("/notify/bitcoin", content=b"{}")
    assert response.status_code == 404
    assert_documented(app, "POST", NOTIFY, response)


def test_confirming_a_closed_test_trade_is_a_documented_409(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    shop = Shop(build)
    order = shop.order()
    payment = shop.pay(order)
    closed = client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.status_code == 200, closed.text
    response = client.post(f"/sandbox/test/payments/{payment['id']}/confirm", json={})
    assert response.status_code == 409
    assert_documented(app, "POST", CONFIRM, response)


# Found by fuzzing /notify/{gateway} (tests/fuzz/test_notify_endpoint_fuzz.py) -------------


def _signed_test_notification(
    app: FastAPI, event: dict[str, object]
) -> tuple[dict[str, str], bytes]:
    settings = app.state.settings
    key = derive_key(settings.secret_key.get_secret_value(), "knowpay/test-channel/v1")
    body = json.dumps(event).encode()
    timestamp = int(app.state.clock.now().timestamp())
    return {"Knowpay-Test-Signature": signing.sign(key, timestamp, body)}, body


def _event(**changes: object) -> dict[str, object]:
    return {
        "id": "evt_test_1",
        "type": "payment.succeeded",
        "out_trade_no": "pay_unknown",
        "gateway_trade_no": "test_pay_unknown",
        "amount": "99.00",
        "currency": "CNY",
        "paid_at": "2026-01-01T12:00:00+00:00",
        **changes,
    }


def test_a_signed_notification_with_a_lone_surrogate_is_refused_not_a_500(
    app: FastAPI, client: TestClient
) -> None:
    headers, body = _signed_test_notification(app, _event(id="evt_\ud800"))
    assert b"\\ud800" in body  # JSON can carry it; no database column can
    response = client.post("/notify/test", content=body, headers=headers)
    assert (response.status_code, response.json()) == (400, {"received": False})


def test_an_out_trade_no_too_long_for_a_payment_id_is_not_stored_as_one(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    headers, body = _signed_test_notification(app, _event(out_trade_no="pay_" + "x" * 500))
    response = client.post("/notify/test", content=body, headers=headers)
    assert response.status_code == 200  # not a trade of ours: told to stop
    with database.session_scope(read_only=True) as session:
        row = session.scalars(select(InboundNotification)).one()
    assert (row.outcome, row.payment_id) == ("unknown_trade", None)


def test_a_signed_notification_with_a_nul_is_refused_not_a_500(
    app: FastAPI, client: TestClient
) -> None:
    """PostgreSQL's text columns refuse NUL (found by the fuzz suites run on PostgreSQL)."""
    headers, body = _signed_test_notification(app, _event(id="evt_\x00"))
    response = client.post("/notify/test", content=body, headers=headers)
    assert (response.status_code, response.json()) == (400, {"received": False})


def test_a_signed_notification_with_an_amount_of_thousands_of_digits_is_refused_not_a_500(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    """Found by the fuzz suite on PostgreSQL: the amount parsed, and the message saying it
    was not the payment's could not print it (Python refuses a 4,300-digit int as text)."""
    shop = Shop(build)
    payment = shop.pay(shop.order())
    event = _event(out_trade_no=payment["id"], amount="9" * 5000)
    headers, body = _signed_test_notification(app, event)
    response = client.post("/notify/test", content=body, headers=headers)
    assert (response.status_code, response.json()) == (400, {"received": False})
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "pending"


def test_a_gateway_trade_no_longer_than_the_payment_holds_is_refused(
    app: FastAPI, client: TestClient, build: Builders, database: Database
) -> None:
    """Payment.gateway_trade_no holds 128 characters; PostgreSQL refused a longer one (500)."""
    shop = Shop(build)
    payment = shop.pay(shop.order())
    event = _event(out_trade_no=payment["id"], gateway_trade_no="test_" + "x" * 200)
    headers, body = _signed_test_notification(app, event)
    response = client.post("/notify/test", content=body, headers=headers)
    assert (response.status_code, response.json()) == (400, {"received": False})
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "pending"


def test_a_processed_notification_is_stored_as_processed_in_its_one_insert(
    build: Builders, app: FastAPI, database: Database
) -> None:
    shop = Shop(build)
    payment = shop.pay(shop.order())
    with statements_sent(app.state.database.engine) as statements:
        assert shop.confirm(payment)["notification"] == "processed"

    assert not [s for s in statements if s.startswith("UPDATE inbound_notifications")]
    with database.session_scope() as session:
        row = session.scalars(
            select(InboundNotification).where(InboundNotification.payment_id == payment["id"])
        ).one()
        assert row.outcome == "processed"
