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


def test_the_login_form_documents_only_what_a_form_can_carry(
    app: FastAPI, client: TestClient
) -> None:
    # Found by schemathesis against the running demo: the form's schema allowed a null
    # grant_type, which a form can only write as the text "null" (a 422). A form leaves the
    # field out instead; the JSON body may still say null.
    body = app.openapi()["paths"]["/v1/auth/token"]["post"]["requestBody"]["content"]
    form = body["application/x-www-form-urlencoded"]["schema"]["properties"]["grant_type"]
    assert form == {"type": "string", "const": "password", "title": "Grant Type"}
    as_json = body["application/json"]["schema"]["properties"]["grant_type"]
    assert {"type": "null"} in as_json["anyOf"]
    answer = client.post("/v1/auth/token", data={"username": "a@example.com", "password": "x"})
    assert answer.status_code == 401  # no grant_type at all is fine
