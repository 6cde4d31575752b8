"""CSRF protection for knowpay's own HTML forms (pages authenticated by a session cookie).

Double submit, signed and bound to the session: the token is `nonce.HMAC(key, nonce ‖
session cookie)`, under a key derived from the master key. A page that renders a form calls
`issue_csrf_token`, which sets the token in the `knowpay_csrf` cookie and returns it for a
hidden `csrf_token` field (or the `X-CSRF-Token` header of a script's request). Every unsafe
request (POST, PUT, PATCH, DELETE) that carries the session cookie must then send a token
that equals the cookie's and was signed for that very session; otherwise 403 `csrf_failed`,
before any endpoint runs: problem+json, or for a page's form the page the web layer makes of
it (`page_refusal`: the error page in the visitor's language). A token stolen from another
session, or planted in a cookie by a sibling subdomain, does not verify.

The pages (every path outside `/v1/`) check a form even without a session cookie: a
cross-site POST never carries the SameSite=Lax cookie, so letting cookie-less forms through
let any site log a visitor in to the attacker's account (login CSRF). Every page hands out an
anonymous session with its form, so a real form always has one. ("A form" is what another
site can send without a CORS preflight: a urlencoded, multipart or text/plain body.)
An `Authorization` header does not exempt a page either: pages read only the cookie, and a
browser does add such a header by itself behind a proxy with HTTP authentication.

Exempt: the API under `/v1/` when the request carries an `Authorization` header or no session
cookie (it authenticates by the header only: nothing ambient to abuse), the gateways'
notifications (`/notify/…`), the payer's way back from a gateway (`/return/…`, posted by the
gateway's page; it only asks the gateway and redirects), and the demo's gateway simulators
(`/sandbox/…`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowpay.kit.crypto import derive_key
from knowpay.kit.errors import Forbidden, problem_response

SESSION_COOKIE = "knowpay_session"
CSRF_COOKIE = "knowpay_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# /sandbox/: the gateway simulators `knowpay demo` mounts on knowpay's own origin stand for
# the gateways' sites; their payer pages post forms of their own, with no knowpay token.
EXEMPT_PREFIXES = ("/notify/", "/sandbox/", "/return/")
API_PREFIX = "/v1/"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_CROSS_SITE_TYPES = (*_FORM_TYPES, "text/plain")  # sent by other sites with no preflight


class CsrfFailed(Forbidden):
    code, title = "csrf_failed", "The form's CSRF token is missing or not valid"


PageRefusal = Callable[[Request], Response | None]
"""The refusal of a page's form as a page (app.py passes the web layer's; kit knows no
pages); None: not a page, answer problem+json."""


class CsrfTokens:
    """Issues and checks tokens bound to one session."""

    def __init__(self, master_key: str) -> None:
        self._key = derive_key(master_key, "knowpay/csrf/v1")

    def issue(self, session: str) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac(nonce, session)}"

    def valid(self, token: str, session: str) -> bool:
        """Whether `token` was issued by this key for `session` (constant-time)."""
        nonce, _, mac = token.partition(".")
        if not nonce or not mac:
            return False
        expected = self._mac(nonce, session).encode("ascii")
        return hmac.compare_digest(mac.encode("ascii", "replace"), expected)

    def _mac(self, nonce: str, session: str) -> str:
        message = nonce.encode("utf-8") + b"\x00" + session.encode("utf-8")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def issue_csrf_token(request: Request, response: Response) -> str:
    """The token for the forms of the page being rendered; also set in the CSRF cookie."""
    tokens: CsrfTokens = request.app.state.csrf_tokens
    token = tokens.issue(request.cookies.get(SESSION_COOKIE, ""))
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return token


class CsrfMiddleware:
    """Refuses cookie-authenticated unsafe requests without a valid token (see the module)."""

    def __init__(
        self, app: ASGIApp, *, tokens: CsrfTokens, page_refusal: PageRefusal | None = None
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.page_refusal = page_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in UNSAFE_METHODS
            or scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session = request.cookies.get(SESSION_COOKIE, "")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["path"].startswith(API_PREFIX):
            exempt = "authorization" in request.headers or not session
        else:
            exempt = not session and content_type not in _CROSS_SITE_TYPES
        if exempt:
            await self.app(scope, receive, send)
            return
        submitted = request.headers.get(CSRF_HEADER.decode())
        body: bytes | None = None
        if submitted is None and content_type in _FORM_TYPES:
            body = await _read_body(receive)
            submitted = await _form_field(scope, body, content_type)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (
            submitted
            and cookie
            and hmac.compare_digest(cookie.encode(), submitted.encode())
            and session
            and self.tokens.valid(submitted, session)
        ):
            response = await self._refusal(request)
            await response(scope, receive, send)
            return
        await self.app(scope, receive if body is None else _replay(body, receive), send)

    async def _refusal(self, request: Request) -> Response:
        if self.page_refusal is not None and not request.url.path.startswith(API_PREFIX):
            # The page is rendered with the session's account (a database read): off the loop.
            page = await run_in_threadpool(self.page_refusal, request)
            if page is not None:
                return page
        error = CsrfFailed("Reload the page and submit the form again.")
        return problem_response(
            request, status=error.status, code=error.code, title=error.title, detail=error.detail
        )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _form_field(scope: Scope, body: bytes, content_type: str) -> str | None:
    if content_type == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get(CSRF_FIELD)
        return values[-1] if values else None

    async def empty() -> Message:
        return {"type": "http.disconnect"}

    try:
        form = await Request(scope, _replay(body, empty)).form()
    except (HTTPException, MultiPartException):  # a body that is no multipart: no token in it
        return None
    try:
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    finally:
        await form.close()
