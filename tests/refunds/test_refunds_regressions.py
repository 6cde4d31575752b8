"""Found by fuzzing (tests/fuzz/test_api_fuzz.py): answers /openapi.json did not document."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.builders import Builders
from tests.openapi_conformance import assert_documented


def test_a_refund_of_an_unknown_order_is_a_documented_404(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    response = client.post(
        "/v1/refunds",
        json={"order_id": "ord_missing", "reason": "other"},
        headers=build.app().headers,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"
    assert_documented(app, "POST", "/v1/refunds", response)
