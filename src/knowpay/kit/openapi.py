"""The OpenAPI schema as the API really answers: every error is problem+json.

FastAPI documents only the success response and a 422 in its own validation format. knowpay
renders every error as RFC 9457 problem+json (kit/errors.py), so the schema is completed here,
once, for every operation: the errors the shared layers produce (validation, malformed JSON,
authentication, idempotency, body size, rate limits, database unavailable) by what the
operation is, plus any an endpoint declares itself with `problem_responses(...)`."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from knowpay.kit.errors import PROBLEM_CONTENT_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
VALIDATION_PROBLEM_REF = "#/components/schemas/ValidationProblem"
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
_WRITES = frozenset({"post", "put", "patch", "delete"})
_NOT_RATE_LIMITED = ("/notify/", "/healthz", "/readyz", "/metrics")
"""kit/ratelimit.py's ALWAYS_EXEMPT: a gateway or a health probe is never turned away."""
_NO_DATABASE = frozenset({"/healthz", "/metrics"})

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457) with a stable snake_case `code` and the request id.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable, snake_case: branch on this."},
        "request_id": {"type": ["string", "null"]},
    },
    "additionalProperties": True,
}

VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "A problem; for `validation_error` (and only then) the offending fields.",
    "allOf": [{"$ref": PROBLEM_REF}],
    "type": "object",
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "in", "message", "type"],
                "properties": {
                    "field": {"type": "string"},
                    "in": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        }
    },
}

_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (the body is not valid JSON, or a parameter is not usable)",
    401: "Not authenticated: no credentials, or an unknown, revoked or expired one",
    403: "Authenticated, but this caller may not do this",
    404: "No such object (or not one this caller may see)",
    409: "Conflicts with the object's current state, with a concurrent write to it "
    "(`concurrent_update`, Retry-After), or the Idempotency-Key is in use",
    413: "The request body is too large",
    415: "The body was sent as another media type than JSON",
    422: "Invalid fields, a reused Idempotency-Key, or a request that cannot be carried out",
    429: "Too many requests: retry after `Retry-After` seconds",
    503: "Temporarily unavailable (nothing was changed): retry shortly",
}


def _problem_response(status: int, ref: str = PROBLEM_REF) -> dict[str, Any]:
    description = _DESCRIPTIONS.get(status) or HTTPStatus(status).phrase
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": ref}}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can also answer these statuses (as problem+json)."""
    return {status: _problem_response(status) for status in statuses}


def _shared_errors(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The errors the shared layers can give this operation, whatever its endpoint does."""
    parameters = operation.get("parameters") or []
    has_body = "requestBody" in operation
    statuses: set[int] = set()
    if parameters or has_body or (path.startswith("/v1/") and method == "post"):
        statuses.add(422)  # validation; Idempotency-Key reuse on any POST under /v1
    if has_body:
        statuses |= {400, 413}
        if "application/json" in operation["requestBody"].get("content", {}):
            statuses.add(415)  # a JSON body sent as another media type
    if operation.get("security"):
        statuses |= {401, 403}
    if any(parameter.get("in") == "path" for parameter in parameters):
        statuses.add(404)
    if path.startswith("/v1/") and method in _WRITES:
        statuses.add(409)  # state conflicts; Idempotency-Key still in use
    if not path.startswith(_NOT_RATE_LIMITED):
        statuses.add(429)
    if path not in _NO_DATABASE:
        statuses.add(503)
    return statuses


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Complete a generated schema: problem+json for every error response of every operation."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    components["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in _shared_errors(path, method, operation):
                responses.setdefault(str(status), {})
            for key, response in responses.items():
                if not key.isdigit() or int(key) < 400 or _declares_own_content(response):
                    continue
                ref = VALIDATION_PROBLEM_REF if key == "422" else PROBLEM_REF
                responses[key] = {**_problem_response(int(key), ref), **_described(response)}
    for unused in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, f"#/components/schemas/{unused}"):
            components.pop(unused, None)
    return schema


def _declares_own_content(response: dict[str, Any]) -> bool:
    """An endpoint that answers an error in another format (a gateway's) says so itself;
    FastAPI's own 422 (HTTPValidationError) is not what knowpay sends."""
    content = response.get("content")
    return bool(content) and not _referenced(content, "#/components/schemas/HTTPValidationError")


def _described(response: dict[str, Any]) -> dict[str, Any]:
    """An endpoint's own description of an error response wins over the generic one."""
    description = response.get("description")
    if description and description != "Validation Error":
        return {"description": description}
    return {}


def _referenced(value: Any, ref: str) -> bool:
    if isinstance(value, dict):
        return value.get("$ref") == ref or any(_referenced(v, ref) for v in value.values())
    if isinstance(value, list):
        return any(_referenced(v, ref) for v in value)
    return False


def install_openapi(app: FastAPI) -> None:
    """Serve the completed schema at the app's openapi_url (generated once, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
