"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.migrations import upgrade


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


def test_readyz_is_503_while_the_schema_is_behind_the_code(
    settings: Settings, tmp_path: Path
) -> None:
    """A process started from newer code before `knowpay migrate` fails every request that
    reads a new column (seen: 1,712 500s in a crash run): it must not look ready."""
    behind = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/behind.db"})
    database = Database(behind)
    upgrade(database.engine, "20261125_0010")
    with TestClient(create_app(behind, database=database)) as client:
        outdated = client.get("/readyz")
        assert outdated.status_code == 503
        assert outdated.json()["code"] == "schema_outdated"
        assert "20261125_0010" in outdated.json()["detail"]
        upgrade(database.engine)
        assert client.get("/readyz").status_code == 200
    database.dispose()
