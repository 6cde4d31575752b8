"""Risk control on the payment path: a velocity burst is denied, a blacklisted IP is denied,
an amount anomaly is held for review and goes to the gateway only when staff release it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.audit.models import AuditRecord
from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.worker.runner import Worker
from tests import books
from tests.builders import Builders, Caller, Shop


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


@pytest.fixture
def finance(build: Builders) -> Caller:
    return build.staff(Role.FINANCE)


def add_rule(client: TestClient, finance: Caller, **rule: Any) -> None:
    answer = client.post("/v1/admin/risk/rules", json=rule, headers=finance.headers)
    assert answer.status_code == 201, answer.text


def try_to_pay(shop: Shop, order: dict[str, Any], **body: Any) -> Any:
    return shop.build.client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "test", **body},
        headers=shop.app.headers,
    )


def test_a_velocity_burst_is_denied_and_the_denied_attempts_stay_on_record(
    shop: Shop, client: TestClient, finance: Caller
) -> None:
    add_rule(
        client,
        finance,
        kind="velocity",
        action="deny",
        params={"subject": "device", "max_attempts": 3, "window_s": 60},
    )
    order = shop.order()
    answers = [try_to_pay(shop, order, device_id="dev-1") for _ in range(5)]
    assert [a.status_code for a in answers] == [201, 201, 201, 422, 422]
    problem = answers[3].json()
    assert problem["code"] == "risk_denied"
    assert "risk" in problem["detail"]
    attempts = shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert [a["failure_code"] for a in attempts[3:]] == ["risk_denied", "risk_denied"]
    assert all(a["status"] == "failed" for a in attempts[3:])
    # Another device of the same buyer is not caught by the device's burst.
    assert try_to_pay(shop, order, device_id="dev-2").status_code == 201


def test_a_blacklisted_ip_is_denied(shop: Shop, client: TestClient, finance: Caller) -> None:
    add_rule(client, finance, kind="blacklist", action="deny")
    listed = client.post(
        "/v1/admin/risk/blacklist",
        json={"kind": "ip", "value": "203.0.113.9", "reason": "card testing"},
        headers=finance.headers,
    )
    assert listed.status_code == 201, listed.text
    order = shop.order()
    denied = try_to_pay(shop, order, client_ip="203.0.113.9")
    assert (denied.status_code, denied.json()["code"]) == (422, "risk_denied")
    assert try_to_pay(shop, order, client_ip="198.51.100.7").status_code == 201
    decisions = client.get("/v1/admin/risk/decisions", headers=finance.headers).json()["data"]
    assert sorted(d["decision"] for d in decisions) == ["allow", "deny"]


def anomalous_order(shop: Shop, client: TestClient, finance: Caller) -> dict[str, Any]:
    add_rule(
        client,
        finance,
        kind="amount_anomaly",
        action="review",
        params={"multiplier": 3, "min_history": 2},
    )
    for _ in range(2):  # the buyer's history: two ¥99 courses
        shop.confirm(shop.pay(shop.order()))
    big = shop.build.product(shop.app, prices=[{"amount": 99000, "currency": "CNY"}])
    return shop.order(big)


def held_for_review(
    shop: Shop, client: TestClient, finance: Caller
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An anomalous order, its attempt held, and the open review of it."""
    order = anomalous_order(shop, client, finance)
    payment = try_to_pay(shop, order).json()
    [review] = client.get("/v1/admin/risk/reviews?status=open", headers=finance.headers).json()[
        "data"
    ]
    return order, payment, review


def test_an_anomaly_is_held_for_review_and_released_by_staff_to_the_gateway(
    shop: Shop, client: TestClient, finance: Caller, database: Database
) -> None:
    order = anomalous_order(shop, client, finance)
    held = try_to_pay(shop, order)
    assert held.status_code == 201, held.text
    payment = held.json()
    assert (payment["status"], payment["held_for_review"], payment["action"]) == (
        "pending",
        True,
        None,
    )
    queue = client.get("/v1/admin/risk/reviews?status=open", headers=finance.headers).json()
    [review] = queue["data"]
    assert review["payment_id"] == payment["id"]
    assert review["reasons"][0]["kind"] == "amount_anomaly"

    released = client.post(
        f"/v1/admin/risk/reviews/{review['id']}/release", json={}, headers=finance.headers
    )
    assert released.status_code == 200, released.text
    after = shop.get(f"/v1/payments/{payment['id']}")
    assert (after["held_for_review"], after["action"]) == (False, {"type": "none"})
    shop.confirm(after)
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert books.violations(database) == []


def test_a_rejected_review_fails_the_attempt(
    shop: Shop, client: TestClient, finance: Caller
) -> None:
    order, payment, review = held_for_review(shop, client, finance)
    rejected = client.post(
        f"/v1/admin/risk/reviews/{review['id']}/reject", json={}, headers=finance.headers
    )
    assert rejected.status_code == 200, rejected.text
    after = shop.get(f"/v1/payments/{payment['id']}")
    assert (after["status"], after["failure_code"], after["held_for_review"]) == (
        "failed",
        "risk_rejected",
        False,
    )
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"


def test_a_review_whose_attempt_closed_first_leaves_the_queue_as_closed(
    app: FastAPI,
    shop: Shop,
    client: TestClient,
    finance: Caller,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    """Found by a web audit: the worker closed an expired order and its held attempt, and the
    review stayed open, offering a Release that would send nothing."""
    _order, payment, review = held_for_review(shop, client, finance)
    clock.advance(timedelta(hours=3))
    worker = Worker(settings, database, clock, app.state.channel_registry)

    ran = worker.run_jobs_once()
    finance = shop.build.relogin(finance)  # three hours on: a fresh token

    assert (ran["expire_orders"], ran["close_moot_reviews"]) == (1, 1)
    assert (
        client.get("/v1/admin/risk/reviews?status=open", headers=finance.headers).json()["data"]
        == []
    )
    [closed] = client.get("/v1/admin/risk/reviews?status=closed", headers=finance.headers).json()[
        "data"
    ]
    assert (closed["id"], closed["review_status"]) == (review["id"], "closed")
    after = shop.get(f"/v1/payments/{payment['id']}")
    assert (after["status"], after["held_for_review"]) == ("closed", False)
    late = client.post(
        f"/v1/admin/risk/reviews/{review['id']}/release", json={}, headers=finance.headers
    )
    assert late.status_code == 409
    assert late.json()["review_status"] == "closed"
    assert worker.run_jobs_once()["close_moot_reviews"] == 0
    with database.session_scope(read_only=True) as session:
        actions = session.scalars(
            select(AuditRecord.action).where(AuditRecord.object_id == review["id"])
        ).all()
    assert actions == ["risk_review.closed"]


def test_releasing_a_review_whose_order_closed_first_leaves_its_attempt_held_no_more(
    app: FastAPI,
    shop: Shop,
    client: TestClient,
    finance: Caller,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    """Found in an audit: released after its order was closed, but before the worker's
    close_moot_reviews ran, a review's closed attempt kept `held_for_review: true` for good
    (the job looks only at open reviews), though nobody would ever decide it again."""
    order, payment, review = held_for_review(shop, client, finance)
    closed = client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.json()["status"] == "closed", closed.text

    late = client.post(
        f"/v1/admin/risk/reviews/{review['id']}/release", json={}, headers=finance.headers
    )

    assert late.status_code == 200, late.text  # recorded; the console says it went nowhere
    after = shop.get(f"/v1/payments/{payment['id']}")
    assert (after["status"], after["held_for_review"], after["action"]) == ("closed", False, None)
    worker = Worker(settings, database, clock, app.state.channel_registry)
    assert worker.run_jobs_once()["close_moot_reviews"] == 0
    assert books.violations(database) == []


def test_a_buyer_cannot_name_another_ip_to_get_past_an_ip_rule(
    app: FastAPI, shop: Shop, client: TestClient, finance: Caller
) -> None:
    """Found in an audit: a buyer paying through the API with their own token could send any
    `client_ip`, and risk control took it as the payer's address, so a blacklisted address (or
    an IP velocity rule) was passed by naming another. Only an app reports a payer's address;
    a buyer's is the one they call from."""
    add_rule(client, finance, kind="blacklist", action="deny")
    listed = client.post(
        "/v1/admin/risk/blacklist",
        json={"kind": "ip", "value": "203.0.113.9", "reason": "card testing"},
        headers=finance.headers,
    )
    assert listed.status_code == 201, listed.text
    order = shop.order()
    with TestClient(app, client=("203.0.113.9", 50000)) as from_there:
        answer = from_there.post(
            f"/v1/orders/{order['id']}/payments",
            json={"channel": "test", "client_ip": "198.51.100.7"},
            headers={**shop.buyer.headers, "Idempotency-Key": "buyer-1"},
        )
    assert (answer.status_code, answer.json().get("code")) == (422, "risk_denied"), answer.text
    [decision] = client.get("/v1/admin/risk/decisions", headers=finance.headers).json()["data"]
    assert (decision["decision"], decision["client_ip"]) == ("deny", "203.0.113.9")
    # An app still reports the payer's address.
    assert try_to_pay(shop, order, client_ip="198.51.100.7").status_code == 201
