"""The web pages' router (`web_router`, included by app.py), login and logout, the
language switcher, static files, and the error pages.

`install_web_error_pages(app)` makes errors of page routes (those using `page_principal`
or `mark_page`) render as HTML in the visitor's language; the API keeps problem+json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from knowpay.accounts import service as accounts
from knowpay.accounts.errors import InvalidCredentials
from knowpay.kit.errors import KnowpayError, request_id_of
from knowpay.kit.ratelimit import RateLimited, client_ip, enforce, limiter_of
from knowpay.kit.web import DbSession, Hasher, SessionRoute
from knowpay.web import i18n
from knowpay.web.buyer import buyer_router
from knowpay.web.cashier import api_router as cashier_api_router
from knowpay.web.cashier import cashier_router
from knowpay.web.errors import message_for
from knowpay.web.session import (
    PageError,
    PageRedirect,
    apply_session_cookie,
    home_for,
    logged_in,
    mark_page,
    start_session,
)
from knowpay.web.subscriptions import router as subscriptions_router
from knowpay.web.templating import STATIC_DIR, render

pages = APIRouter(
    route_class=SessionRoute, include_in_schema=False, dependencies=[Depends(mark_page)]
)


def safe_next(target: str | None, fallback: str) -> str:
    """Only a path on this site (never `//host` or a scheme) may be a redirect target."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    return target


def redirect(request: Request, location: str) -> RedirectResponse:
    response = RedirectResponse(location, status_code=303)
    apply_session_cookie(request, response)
    return response


@pages.get("/")
def home(request: Request) -> Response:
    principal = logged_in(request)
    return redirect(request, home_for(principal) if principal else "/login")


@pages.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    principal = logged_in(request)
    if principal is not None:
        return redirect(request, safe_next(next, home_for(principal)))
    return render(request, "login.html", next=safe_next(next, ""), error=None, email="")


@pages.post("/login")
def login(
    request: Request,
    session: DbSession,
    hasher: Hasher,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    """Check the email and password (rate limited like `POST /v1/auth/token`), then start
    a new session for the person; staff land in /admin, buyers in /me."""
    _ = i18n.gettext_for(request)
    try:
        limiter = limiter_of(request)
        enforce(
            request,
            [
                (limiter.login_per_ip, client_ip(request)),
                (limiter.login_per_account, limiter.digest(accounts.normalize_email(email))),
            ],
            "login attempts",
        )
        principal = accounts.authenticate(session, hasher, email=email, password=password)
    except (InvalidCredentials, RateLimited) as exc:
        status = 429 if isinstance(exc, RateLimited) else 401
        return render(
            request,
            "login.html",
            status_code=status,
            next=safe_next(next, ""),
            error=message_for(exc.code, _),
            email=email,
        )
    start_session(request, principal, accounts.web_session_generation(session, principal.id))
    return redirect(request, safe_next(next, home_for(principal)))


@pages.get("/logout")
def logout_page(request: Request) -> Response:
    if logged_in(request) is None:
        return redirect(request, "/login")
    return render(request, "logout.html")


@pages.post("/logout")
def logout(request: Request, session: DbSession) -> Response:
    """End the session: a new anonymous one replaces it, and every page session the person
    began before is over, on every device (a copy of the cookie included)."""
    principal = logged_in(request)
    if principal is not None:
        accounts.end_web_sessions(session, principal.id)
    start_session(request, None)
    return redirect(request, "/login")


@pages.post("/lang")
def choose_language(
    request: Request,
    session: DbSession,
    lang: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    """The language switcher: remembered in a cookie, and as the account's locale when
    someone is logged in (so the account's language follows the person's choice)."""
    locale = i18n.normalize_locale(lang) or i18n.DEFAULT_LOCALE
    principal = logged_in(request)
    if principal is not None:
        accounts.get_user(session, principal.id).locale = locale
    response = redirect(request, safe_next(next, "/"))
    response.set_cookie(
        i18n.LANG_COOKIE, locale, max_age=365 * 86400, samesite="lax", httponly=True, path="/"
    )
    return response


_STATIC_ROOT = STATIC_DIR.resolve()
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@pages.get("/static/{path:path}")
def static_file(path: str) -> Response:
    """The pages' CSS, scripts and icons, served by knowpay itself (no CDN)."""
    try:
        target = (_STATIC_ROOT / path).resolve()
        found = target.is_relative_to(_STATIC_ROOT) and target.is_file()
    except (ValueError, OSError):  # a NUL in the path, a name too long for the file system
        found = False
    if not found:
        raise PageError(404, "not_found")
    media_type = _STATIC_TYPES.get(Path(path).suffix.lower())
    if media_type is None:
        raise PageError(404, "not_found")
    return FileResponse(target, media_type=media_type, headers={"Cache-Control": "max-age=3600"})


web_router = APIRouter()  # only includes routers, each a SessionRoute router
web_router.include_router(pages)
web_router.include_router(cashier_router)
web_router.include_router(buyer_router)
web_router.include_router(subscriptions_router)
web_router.include_router(cashier_api_router)


def error_page(request: Request, status: int, code: str, **context: Any) -> Response:
    """The error page: a translated sentence for the code, and the way back."""
    _ = i18n.gettext_for(request)
    return render(
        request,
        "error.html",
        status_code=status,
        code=code,
        message=message_for(code, _),
        request_id=request_id_of(request),
        **context,
    )


PAGE_PREFIXES = ("/me", "/admin", "/pay", "/login", "/logout", "/lang")
"""Paths that are pages whether or not a route matched: an unknown one (a typo, an old
bookmark) gets the 404 page, and a form refused by the CSRF middleware the 403 page, not the
API's problem+json (/v1 and /notify keep that)."""


def is_page_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PAGE_PREFIXES)


def csrf_refusal_page(request: Request) -> Response | None:
    """The CSRF middleware's refusal of a page's form (`kit.csrf.PageRefusal`): the error
    page with the catalog's "The form had expired…", which hands out a fresh token."""
    return error_page(request, 403, "csrf_failed") if is_page_path(request.url.path) else None


def install_web_error_pages(app: FastAPI) -> None:
    """Errors of page routes render as pages; every other route keeps its problem+json."""
    api_handlers = dict(app.exception_handlers)

    async def on_redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageRedirect)
        return redirect(request, exc.location)

    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return error_page(request, exc.status, exc.code)

    def page_or_api(kind: type[Exception]) -> Any:
        fallback = api_handlers[kind]

        async def handler(request: Request, exc: Exception) -> Response:
            # No route matched (404, 405): no page dependency ran, so the path decides, for a
            # browser's GET; other methods keep the API's answer (405 with its Allow header).
            unmatched = (
                isinstance(exc, StarletteHTTPException)
                and request.method in ("GET", "HEAD")
                and is_page_path(request.url.path)
            )
            if not (getattr(request.state, "web_page", False) or unmatched):
                result: Response = await fallback(request, exc)
                return result
            if isinstance(exc, KnowpayError):
                return error_page(request, exc.status, exc.code)
            if isinstance(exc, StarletteHTTPException):
                code = "not_found" if exc.status_code in (404, 405) else "forbidden"
                return error_page(request, exc.status_code, code)
            if isinstance(exc, RequestValidationError):
                return error_page(request, 422, "validation_error")
            if isinstance(exc, DataError):  # a NUL in a field: the API's 422 and its log line
                await fallback(request, exc)
                return error_page(request, 422, "validation_error")
            # The database refused, is out of reach, or a bug: the API's answer decides the
            # status (409, 503, 500) and logs it; the page keeps its code and Retry-After.
            return _as_page(request, await fallback(request, exc))

        return handler

    app.add_exception_handler(PageRedirect, on_redirect)
    app.add_exception_handler(PageError, on_page_error)
    for kind in (
        KnowpayError,
        RequestValidationError,
        StarletteHTTPException,
        IntegrityError,
        DataError,
        OperationalError,
        ProgrammingError,
        PoolTimeout,
        Exception,  # also `kit.errors.UnexpectedErrorMiddleware`'s, for the 500
    ):
        app.add_exception_handler(kind, page_or_api(kind))


def _as_page(request: Request, answer: Response) -> Response:
    """The error page for the API's problem answer: its status, code and Retry-After."""
    try:
        code = str(json.loads(bytes(answer.body))["code"])
    except (ValueError, KeyError, TypeError):
        code = "internal_error"
    page = error_page(request, answer.status_code, code)
    if "retry-after" in answer.headers:
        page.headers["Retry-After"] = answer.headers["retry-after"]
    return page
