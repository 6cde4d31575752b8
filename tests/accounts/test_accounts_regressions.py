"""Found by fuzzing (tests/fuzz/test_api_fuzz.py): answers /openapi.json did not document."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.builders import Builders
from tests.openapi_conformance import assert_documented

SET = "/v1/users/me/payment-password"
VERIFY = "/v1/users/me/payment-password/verify"


def test_a_wrong_login_is_a_documented_401(app: FastAPI, client: TestClient) -> None:
    response = client.post(
        "/v1/auth/token", json={"username": "nobody@example.com", "password": "wrong-password"}
    )
    assert response.status_code == 401
    assert_documented(app, "POST", "/v1/auth/token", response)


def test_a_locked_payment_password_is_a_documented_423(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    buyer = build.buyer(build.app())
    assert client.put(SET, json={"new_password": "482913"}, headers=buyer.headers).is_success
    answers = [
        client.post(VERIFY, json={"password": "000001"}, headers=buyer.headers) for _ in range(5)
    ]
    assert answers[-1].status_code == 423
    assert_documented(app, "POST", VERIFY, answers[-1])
    change = client.put(
        SET, json={"new_password": "730215", "current_password": "482913"}, headers=buyer.headers
    )
    assert change.status_code == 423
    assert_documented(app, "PUT", SET, change)
