"""A number in a JSON body is a JSON number: `true` is not 1 and `"30"` is not 30. Each is a
422 naming the field, and nothing is written."""

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
