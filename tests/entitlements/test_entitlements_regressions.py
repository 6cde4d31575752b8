"""Found by fuzzing (tests/fuzz/test_api_fuzz.py): answers /openapi.json did not document."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.builders import Builders
from tests.openapi_conformance import assert_documented


def test_an_app_listing_entitlements_without_user_id_gets_a_documented_400(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    response = client.get("/v1/entitlements", headers=build.app().headers)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert_documented(app, "GET", "/v1/entitlements", response)
