"""Found by fuzzing (schemathesis, tests/fuzz/test_api_fuzz.py): /openapi.json documented no
error but FastAPI's 422, in a format knowpay never sends. Every error is problem+json."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.kit.errors import PROBLEM_CONTENT_TYPE
from tests.builders import Builders
from tests.openapi_conformance import assert_documented


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    ]


def test_every_error_response_is_documented_as_problem_json(app: FastAPI) -> None:
    for path, method, operation in _operations(app):
        for status, response in operation["responses"].items():
            if int(status) < 400 or path == "/notify/{gateway}":  # gateways: their own format
                continue
            assert PROBLEM_CONTENT_TYPE in response.get("content", {}), (method, path, status)
    assert "HTTPValidationError" not in app.openapi()["components"]["schemas"]


def test_an_authenticated_operation_documents_401_and_403(app: FastAPI) -> None:
    for path, method, operation in _operations(app):
        if operation.get("security"):
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_a_missing_or_bad_credential_is_a_documented_401(app: FastAPI, client: TestClient) -> None:
    assert_documented(app, "GET", "/v1/orders/{order_id}", client.get("/v1/orders/ord_x"))
    wrong = client.get("/v1/orders/ord_x", headers={"Authorization": "Bearer kp_unknown"})
    assert wrong.status_code == 401
    assert_documented(app, "GET", "/v1/orders/{order_id}", wrong)


def test_validation_errors_and_unknown_ids_are_documented(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    caller = build.app()
    invalid = client.post("/v1/orders", json={"items": []}, headers=caller.headers)
    assert invalid.status_code == 422
    assert_documented(app, "POST", "/v1/orders", invalid)
    malformed = client.post(
        "/v1/orders",
        content=b"{",
        headers={**caller.headers, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert_documented(app, "POST", "/v1/orders", malformed)
    missing = client.get("/v1/orders/ord_missing", headers=caller.headers)
    assert missing.status_code == 404
    assert_documented(app, "GET", "/v1/orders/{order_id}", missing)


def test_a_staff_only_operation_refuses_an_app_with_a_documented_403(
    app: FastAPI, client: TestClient, build: Builders
) -> None:
    refused = client.get("/v1/admin/alerts", headers=build.app().headers)
    assert refused.status_code == 403
    assert_documented(app, "GET", "/v1/admin/alerts", refused)


# Pydantic's own names for bounds: when it cannot put a constraint into JSON Schema it leaks it
# under these, and every schema reader (clients, schemathesis) silently ignores them.
_PYDANTIC_ONLY_KEYWORDS = {"gt", "ge", "lt", "le", "decimal_places", "max_digits", "multiple_of"}


def _pydantic_only_keywords(node: Any, where: str = "") -> list[str]:
    if isinstance(node, list):
        return [hit for i, item in enumerate(node) for hit in _pydantic_only_keywords(item, where)]
    if not isinstance(node, dict):
        return []
    hits = [f"{where}: {key}" for key in node if key in _PYDANTIC_ONLY_KEYWORDS]
    for key, value in node.items():
        # Under "properties" the keys are field names, not keywords.
        inner = value.values() if key == "properties" and isinstance(value, dict) else [value]
        hits += [hit for item in inner for hit in _pydantic_only_keywords(item, f"{where}/{key}")]
    return hits


def test_every_bound_in_the_schema_is_a_json_schema_keyword(app: FastAPI) -> None:
    assert _pydantic_only_keywords(app.openapi()) == []


def test_a_decimal_field_states_its_bounds_and_its_notation(app: FastAPI) -> None:
    """A risk rule's multiplier is > 1 and ≤ 1000; as a string it is written as a JSON number."""
    multiplier = app.openapi()["components"]["schemas"]["AmountAnomalyParams"]["properties"][
        "multiplier"
    ]
    number, text = multiplier["anyOf"]
    assert number == {"type": "number", "exclusiveMinimum": 1.0, "maximum": 1000.0}
    assert text["type"] == "string"
    pattern = re.compile(text["pattern"])
    assert [text for text in ("2.5", "1e3", "1_000", " 2", "NaN") if pattern.search(text)] == [
        "2.5",
        "1e3",
    ]


def _request_schemas(app: FastAPI) -> set[str]:
    """The component schemas a request body uses, directly or nested."""
    spec = app.openapi()
    found: set[str] = set()
    pending: list[Any] = [operation.get("requestBody", {}) for _, _, operation in _operations(app)]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending += node
        elif isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if ref and name not in found:
                found.add(name)
                pending.append(spec["components"]["schemas"][name])
            pending += node.values()
    return found


def test_every_currency_in_a_request_body_is_documented_as_three_letters(app: FastAPI) -> None:
    spec = app.openapi()
    currencies = {
        f"{name}.{field}": schema
        for name in _request_schemas(app)
        for field, schema in spec["components"]["schemas"][name].get("properties", {}).items()
        if field in ("currency", "base_currency")
    }
    assert {"OrderCreate.currency", "LimitCreate.currency", "RateIn.base_currency"} <= set(
        currencies
    )
    assert {where: schema.get("pattern") for where, schema in currencies.items()} == dict.fromkeys(
        currencies, "^[A-Za-z]{3}$"
    )
