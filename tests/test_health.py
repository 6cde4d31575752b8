"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_openapi_documents_the_api_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/v1/users", "/v1/auth/token", "/v1/products", "/v1/users/me/payment-password"):
        assert path in schema["paths"], path
    assert "examples" in schema["components"]["schemas"]["ProductCreate"]
    assert client.get("/docs").status_code == 200
