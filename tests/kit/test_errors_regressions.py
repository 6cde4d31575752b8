"""Found by fuzzing on PostgreSQL (tests/fuzz/test_api_fuzz.py): a NUL in a query or path
parameter (`?starting_after=%00`) passed validation and PostgreSQL refused it as data
(psycopg DataError): a 500. The database refusing a value is now a 422 problem."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sqlalchemy_exc

from knowpay.kit.errors import install_error_handlers
from tests.builders import Builders
from tests.openapi_conformance import assert_documented


def test_a_value_the_database_refuses_is_a_422_problem() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    def refused() -> None:
        raise sqlalchemy_exc.DataError("SELECT …", {}, ValueError("cannot contain NUL"))

    response = TestClient(app, raise_server_exceptions=False).get("/refused")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unstorable_value"


def test_a_nul_in_a_parameter_is_never_a_500(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    """SQLite stores a NUL and finds nothing; PostgreSQL refuses it (422)."""
    caller = build.app()
    listed = client.get("/v1/orders", params={"starting_after": "\x00"}, headers=caller.headers)
    assert listed.status_code in (200, 422), listed.text
    assert_documented(app, "GET", "/v1/orders", listed)
    one = client.get("/v1/orders/ord_%00", headers=caller.headers)
    assert one.status_code in (404, 422), one.text
    assert_documented(app, "GET", "/v1/orders/{order_id}", one)
