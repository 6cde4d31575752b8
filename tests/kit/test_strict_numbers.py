"""A number in a JSON body is a JSON number (`true` is not 1, `"30"` is not 30) and a switch a
JSON boolean (`"yes"` and 1 are not true). Each is a 422 naming the field, and nothing is
written."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from knowpay.auth.principals import Role
from tests.builders import Builders

NOT_NUMBERS = [True, "30", 30.0]


def _assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [error["field"] for error in problem["errors"]] == [field]


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_a_products_period_is_a_number(client: TestClient, build: Builders, value: Any) -> None:
    app = build.app()
    body = {"title": "Club", "kind": "membership", "period_days": value}

    _assert_refused(client.post("/v1/products", json=body, headers=app.headers), "period_days")
    assert client.get("/v1/products", headers=app.headers).json()["data"] == []


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_a_limits_amount_is_a_number(client: TestClient, build: Builders, value: Any) -> None:
    finance = build.staff(Role.FINANCE)
    body = {"scope": "buyer", "period": "day", "amount": value, "currency": "CNY"}

    _assert_refused(client.post("/v1/admin/limits", json=body, headers=finance.headers), "amount")
    assert client.get("/v1/admin/limits", headers=finance.headers).json()["data"] == []


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_a_rotations_grace_period_is_a_number(
    client: TestClient, build: Builders, value: Any
) -> None:
    app = build.app()
    created = client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/k", "events": ["*"]},
        headers=app.headers,
    ).json()

    rotated = client.post(
        f"/v1/webhook-endpoints/{created['id']}/rotate-secret",
        json={"grace_period_s": value},
        headers=app.headers,
    )

    _assert_refused(rotated, "grace_period_s")
    assert rotated.json()["errors"][0]["in"] == "body"


NOT_BOOLEANS = ["yes", "true", 1, 0]


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_switching_a_limit_on_or_off_takes_a_json_boolean(
    client: TestClient, build: Builders, value: Any
) -> None:
    finance = build.staff(Role.FINANCE)
    body = {"scope": "buyer", "period": "day", "amount": 5000, "currency": "CNY"}
    limit = client.post("/v1/admin/limits", json=body, headers=finance.headers).json()

    patched = client.patch(
        f"/v1/admin/limits/{limit['id']}", json={"enabled": value}, headers=finance.headers
    )

    _assert_refused(patched, "enabled")
    assert client.get("/v1/admin/limits", headers=finance.headers).json()["data"][0]["enabled"]
    created = client.post(
        "/v1/admin/limits", json={**body, "enabled": value}, headers=finance.headers
    )
    _assert_refused(created, "enabled")


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_switching_a_risk_rule_on_or_off_takes_a_json_boolean(
    client: TestClient, build: Builders, value: Any
) -> None:
    finance = build.staff(Role.FINANCE)
    rule = {
        "kind": "velocity",
        "action": "deny",
        "params": {"subject": "buyer", "max_attempts": 5, "window_s": 60},
    }
    created = client.post(
        "/v1/admin/risk/rules", json={**rule, "enabled": value}, headers=finance.headers
    )
    _assert_refused(created, "velocity.enabled")  # the rule kinds are a tagged union
    made = client.post("/v1/admin/risk/rules", json=rule, headers=finance.headers).json()

    patched = client.patch(
        f"/v1/admin/risk/rules/{made['id']}", json={"enabled": value}, headers=finance.headers
    )

    _assert_refused(patched, "enabled")
