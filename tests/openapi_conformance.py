"""Checks that an answer is what /openapi.json says the operation answers: a documented
status code and content type, and a body that matches the documented schema (schemathesis's
own checks, as tests/fuzz/test_api_fuzz.py runs them)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


def assert_documented(app: FastAPI, method: str, path: str, response: httpx.Response) -> None:
    """Fail unless `response` is documented for `method path` (a path template)."""
    schema: Any = schemathesis.openapi.from_dict(app.openapi())
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    found = re.fullmatch(pattern, response.request.url.path)
    assert found is not None, f"{response.request.url.path} is not {path}"
    case = schema[path][method].Case(path_parameters=found.groupdict())
    case.validate_response(
        response,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
    )
