"""One error base with a status and a stable code, rendered as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sqlalchemy_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowpay.kit.middleware import GETS_WITH_EFFECTS, HEAD_AS_GET

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://knowpay.dev/problems/"

logger = logging.getLogger("knowpay.errors")


class KnowpayError(Exception):
    """A business outcome the caller must hear about, with a stable snake_case code."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class InvalidRequest(KnowpayError):
    status, code, title = 400, "invalid_request", "The request is not valid"


class Unauthorized(KnowpayError):
    status, code, title = 401, "unauthorized", "Authentication is required"


class Forbidden(KnowpayError):
    status, code, title = 403, "forbidden", "You may not do this"


class NotFound(KnowpayError):
    status, code, title = 404, "not_found", "No such object"


class Conflict(KnowpayError):
    status, code, title = 409, "conflict", "The request conflicts with the current state"


class Unprocessable(KnowpayError):
    status, code, title = 422, "unprocessable", "The request cannot be carried out"


class PayloadTooLarge(KnowpayError):
    status, code, title = 413, "payload_too_large", "The request body is too large"


class ServiceUnavailable(KnowpayError):
    status, code, title = 503, "service_unavailable", "The service is temporarily unavailable"


def request_id_of(request: Request) -> str | None:
    """The id the request-id middleware gave this request."""
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build a problem+json response carrying the request id."""
    request_id = request_id_of(request)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
        **extra,
    }
    all_headers = dict(headers or {})
    if request_id:
        all_headers["X-Request-Id"] = request_id
    if status == 401:  # RFC 9110 §15.5.2: a 401 names the scheme that would be accepted
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        body, status_code=status, headers=all_headers, media_type=PROBLEM_CONTENT_TYPE
    )


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": _field_path(error.get("loc", ())),
            "in": str(error.get("loc", ("body",))[0]),
            "message": str(error.get("msg", "invalid")),
            "type": str(error.get("type", "invalid")),
        }
        for error in exc.errors()
    ]


async def _on_knowpay_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KnowpayError)
    headers = exc.extra.pop("headers", None) if "headers" in exc.extra else None
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=headers,
        **exc.extra,
    )


def _malformed_json(request: Request) -> JSONResponse:
    return problem_response(
        request,
        status=400,
        code="malformed_json",
        title="The body is not valid JSON",
        detail="The request body could not be parsed as JSON.",
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if any(error["type"] == "json_invalid" for error in errors):
        return _malformed_json(request)
    if _body_sent_as_something_else(request, errors):
        return problem_response(
            request,
            status=415,
            code="unsupported_media_type",
            title="Unsupported media type",
            detail="Send the body as JSON, with Content-Type: application/json.",
        )
    fields = ", ".join(sorted({e["field"] for e in errors})) or "request"
    return problem_response(
        request,
        status=422,
        code="validation_error",
        title="The request has invalid fields",
        detail=f"Invalid fields: {fields}",
        errors=errors,
    )


def _media_type(request: Request) -> str:
    """The request's Content-Type without its parameters, lower-cased ("" when none)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _body_sent_as_something_else(request: Request, errors: list[dict[str, Any]]) -> bool:
    """A JSON body was expected, and the request said it sent another kind (FastAPI then
    leaves the body unparsed, and it fails validation as a whole)."""
    media_type = _media_type(request)
    if not media_type or _is_json(media_type):
        return False
    return any(error["in"] == "body" and error["field"] == "body" for error in errors)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication is required"),
    403: ("forbidden", "You may not do this"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if _json_body_unreadable(request, exc):
        return _malformed_json(request)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route for {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        sent = "HEAD" if request.scope.get(HEAD_AS_GET) else request.method
        detail = f"{sent} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(_methods_served_at(request))
    return problem_response(
        request,
        status=exc.status_code,
        code=code,
        title=title,
        detail=detail,
        headers=headers,
    )


def _json_body_unreadable(request: Request, exc: StarletteHTTPException) -> bool:
    """FastAPI's 400 for a JSON body its parser gave up on other than by a syntax error: not
    UTF-8, a number past Python's 4,300 digits, nesting past the recursion limit."""
    return (
        exc.status_code == 400
        and _is_json(_media_type(request))
        and isinstance(exc.__cause__, ValueError | RecursionError)
    )


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _methods_served_at(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only those of the
    first route that matched the path, and FastAPI makes one route per method)."""
    routes = request.app.router.routes
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    if "GET" in methods and not request.url.path.startswith(GETS_WITH_EFFECTS):
        methods.add("HEAD")  # kit.middleware.HeadAsGetMiddleware
    return sorted(methods)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %s", exc, extra={"request_id": request_id_of(request)})
    return problem_response(
        request,
        status=503,
        code="database_unavailable",
        title="Temporarily unavailable",
        detail="The database is busy or unreachable; nothing was changed. Retry shortly.",
        headers={"Retry-After": "1"},
    )


SCHEMA_BEHIND_STATES = frozenset({"42P01", "42703"})
"""PostgreSQL's undefined_table and undefined_column: the code is newer than the schema."""


async def _on_programming_error(request: Request, exc: Exception) -> JSONResponse:
    """A table or column this code needs is missing (started before `knowpay migrate`): a
    503 the load balancer can act on, like /readyz; any other such error is a bug (500)."""
    if getattr(getattr(exc, "orig", None), "sqlstate", None) not in SCHEMA_BEHIND_STATES:
        return await _on_unexpected_error(request, exc)
    logger.error("schema behind the code: %s", exc, extra={"request_id": request_id_of(request)})
    return problem_response(
        request,
        status=503,
        code="schema_outdated",
        title="Temporarily unavailable",
        detail="The database schema is older than this code: run `knowpay migrate`. "
        "Nothing was changed.",
        headers={"Retry-After": "30"},
    )


def is_unique_violation(exc: sqlalchemy_exc.IntegrityError) -> bool:
    """A duplicate key (PostgreSQL's SQLSTATE 23505, SQLite's "UNIQUE constraint failed"), as
    opposed to a NOT NULL, CHECK or foreign key violation, which no concurrency explains."""
    return getattr(exc.orig, "sqlstate", None) == "23505" or str(exc.orig).startswith(
        "UNIQUE constraint failed"
    )


async def _on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # The code checks before it writes; a duplicate key that still reaches the database was
    # written by a concurrent transaction between the check and the write. Retrying sees it.
    assert isinstance(exc, sqlalchemy_exc.IntegrityError)
    if not is_unique_violation(exc):
        return await _on_unexpected_error(request, exc)
    # An error, not a warning: should no concurrency explain it, it is a bug that repeats.
    logger.error(
        "duplicate key (a concurrent write, or a missing check): %s",
        exc.orig,
        extra={"request_id": request_id_of(request)},
    )
    return problem_response(
        request,
        status=409,
        code="concurrent_update",
        title="Changed at the same moment",
        detail="Another request wrote the same record at the same moment; the write that "
        "collided was rolled back. Retry shortly.",
        headers={"Retry-After": "1"},
    )


async def _on_unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    # Input that passed validation but that the database refuses as data: above all a NUL
    # character, which PostgreSQL's text columns and parameters cannot hold (SQLite can).
    logger.warning(
        "value refused by the database: %s", exc, extra={"request_id": request_id_of(request)}
    )
    return problem_response(
        request,
        status=422,
        code="unstorable_value",
        title="A value cannot be stored",
        detail="A value contains a NUL character, or is out of range for its field; "
        "nothing was changed.",
    )


async def _on_client_gone(request: Request, exc: Exception) -> JSONResponse:
    # The caller hung up before its body arrived: nothing was done, and nobody is left to
    # read an answer. Not an error of ours (it was logged as one, with a traceback).
    logger.info("client disconnected before its request was read: %s", request.url.path)
    return problem_response(
        request,
        status=400,
        code="client_disconnected",
        title="The client went away",
        detail="The connection closed before the request body arrived; nothing was changed.",
    )


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"request_id": request_id_of(request)})
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal error",
        detail="Something went wrong on our side; nothing was changed. Quote the request id.",
    )


class UnexpectedErrorMiddleware:
    """Answers an exception nothing else handled with the 500 problem from inside the
    middleware stack, so that answer too carries the security headers and the request id,
    and the connection stays usable. (Starlette's outermost handler answers outside every
    middleware and then re-raises to the server, which drops the keep-alive connection.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for another answer: the server closes the connection
                raise
            # The app's own handler for Exception (the web layer's renders a page's error
            # as the HTML page), else the 500 problem.
            handlers = getattr(scope.get("app"), "exception_handlers", {})
            handler = handlers.get(Exception, _on_unexpected_error)
            response = await handler(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error leave the app as problem+json."""
    app.add_exception_handler(KnowpayError, _on_knowpay_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Pool exhausted, connection refused or lost, "too many clients": retryable, and the
    # transaction was rolled back.
    app.add_exception_handler(sqlalchemy_exc.TimeoutError, _on_database_unavailable)
    app.add_exception_handler(sqlalchemy_exc.OperationalError, _on_database_unavailable)
    app.add_exception_handler(sqlalchemy_exc.ProgrammingError, _on_programming_error)
    app.add_exception_handler(sqlalchemy_exc.DataError, _on_unstorable_value)
    app.add_exception_handler(sqlalchemy_exc.IntegrityError, _on_integrity_error)
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(Exception, _on_unexpected_error)
