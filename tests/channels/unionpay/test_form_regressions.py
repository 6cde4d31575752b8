"""GET /forms/unionpay: found while fuzzing (tests/fuzz/test_api_fuzz.py) — a bad `f` was a
400 the schema did not document, and one holding a JSON nesting bomb was a 500."""

from __future__ import annotations

import base64

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.openapi_conformance import assert_documented


def _f(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_an_unreadable_form_is_a_documented_400(app: FastAPI, client: TestClient) -> None:
    response = client.get("/forms/unionpay", params={"f": _f(b"\x9e not json")})
    assert response.status_code == 400
    assert_documented(app, "GET", "/forms/unionpay", response)


def test_a_json_nesting_bomb_is_a_400_not_a_500(app: FastAPI, client: TestClient) -> None:
    response = client.get("/forms/unionpay", params={"f": _f(b"[" * 20_000)})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_form"
    assert_documented(app, "GET", "/forms/unionpay", response)
