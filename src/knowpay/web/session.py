"""The pages' session: a signed `knowpay_session` cookie, login and logout.

The cookie holds `base64url(JSON).base64url(HMAC-SHA256)` under a key derived from the
master key for this purpose alone: a random session id (`sid`), and once logged in the
person's id, role and app, and an expiry. Every visitor gets an anonymous session on the
first page (so the login form is CSRF-checked like every other form); logging in and out
replaces it with a new session id, so a session fixed before login is worth nothing after.
The cookie is HttpOnly, SameSite=Lax, and Secure when knowpay's public URL is https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from starlette.responses import Response
from starlette.routing import Match

from knowpay.accounts import service as accounts
from knowpay.accounts.errors import UserNotFound
from knowpay.auth.principals import PERSON_ROLES, STAFF_ROLES, Principal, Role
from knowpay.kit import context
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import derive_key
from knowpay.kit.csrf import SESSION_COOKIE
from knowpay.kit.db import Database
from knowpay.web.i18n import remember_account_locale

ANONYMOUS_TTL_S = 24 * 3600
LOGGED_IN_TTL_S = 8 * 3600
_STATE = "knowpay_web_session"


@dataclass(frozen=True, slots=True)
class WebSession:
    """What the cookie says: a session id, and who is logged in (None: nobody)."""

    sid: str
    expires_at: int
    user_id: str | None = None
    role: Role | None = None
    app_id: str | None = None
    generation: int = 0
    """The person's `web_session_generation` when it began: a logout raises theirs, which
    ends every session begun before (no clocks compared, so no skew between hosts)."""

    @property
    def principal(self) -> Principal | None:
        if self.user_id is None or self.role is None:
            return None
        return Principal(id=self.user_id, role=self.role, app_id=self.app_id)


class SessionCodec:
    """Signs and checks session cookies (constant-time; the clock is the caller's)."""

    def __init__(self, master_key: str) -> None:
        self._key = derive_key(master_key, "knowpay/web-session/v1")

    def encode(self, session: WebSession) -> str:
        claims: dict[str, Any] = {"sid": session.sid, "exp": session.expires_at}
        if session.generation:
            claims["gen"] = session.generation
        if session.user_id is not None and session.role is not None:
            claims.update(sub=session.user_id, role=session.role.value, app=session.app_id)
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def decode(self, value: str, now: datetime) -> WebSession | None:
        """The session a cookie names; None when it is forged, malformed or expired."""
        payload, _, mac = value.partition(".")
        if not payload or not mac:
            return None
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(payload).encode()):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            sid, expires_at = str(claims["sid"]), claims["exp"]
            role = Role(claims["role"]) if claims.get("role") else None
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(expires_at, int) or expires_at <= int(now.timestamp()):
            return None
        if role is not None and role not in PERSON_ROLES:
            return None
        user_id = claims.get("sub") if role is not None else None
        app_id, generation = claims.get("app"), claims.get("gen", 0)
        return WebSession(
            sid=sid,
            expires_at=expires_at,
            user_id=str(user_id) if user_id else None,
            role=role if user_id else None,
            app_id=app_id if isinstance(app_id, str) else None,
            generation=generation if isinstance(generation, int) else -1,
        )

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _codec(request: Request) -> SessionCodec:
    state = request.app.state
    codec: SessionCodec | None = getattr(state, "web_session_codec", None)
    if codec is None:
        settings: Settings = state.settings
        codec = SessionCodec(settings.secret_key.get_secret_value())
        state.web_session_codec = codec
    return codec


def _now(request: Request) -> datetime:
    clock: Clock = request.app.state.clock
    return clock.now()


@dataclass(slots=True)
class _Current:
    """This request's session: the one the cookie named, or a new one to be set."""

    session: WebSession
    cookie: str
    changed: bool


def current_session(request: Request) -> WebSession:
    """This request's session (a new anonymous one when the cookie is missing or invalid)."""
    return _current(request).session


def session_cookie_value(request: Request) -> str:
    """The cookie value the response will carry (CSRF tokens are bound to it)."""
    return _current(request).cookie


def _current(request: Request) -> _Current:
    found: _Current | None = getattr(request.state, _STATE, None)
    if found is not None:
        return found
    codec, raw = _codec(request), request.cookies.get(SESSION_COOKIE, "")
    session = codec.decode(raw, _now(request)) if raw else None
    if session is None:
        session = _new_session(request, None, 0)
        found = _Current(session, codec.encode(session), changed=True)
    else:
        found = _Current(session, raw, changed=False)
    setattr(request.state, _STATE, found)
    return found


def _new_session(request: Request, principal: Principal | None, generation: int) -> WebSession:
    now = int(_now(request).timestamp())
    if principal is None:
        return WebSession(sid=secrets.token_urlsafe(16), expires_at=now + ANONYMOUS_TTL_S)
    return WebSession(
        sid=secrets.token_urlsafe(16),
        expires_at=now + LOGGED_IN_TTL_S,
        user_id=principal.id,
        role=principal.role,
        app_id=principal.app_id,
        generation=generation,
    )


def start_session(request: Request, principal: Principal | None, generation: int = 0) -> None:
    """Replace this request's session with a new one (login: the person, in their current
    `web_session_generation`; logout: nobody)."""
    session = _new_session(request, principal, generation)
    setattr(request.state, _STATE, _Current(session, _codec(request).encode(session), True))
    request.state.web_principal = None  # checked again against the account when asked


def apply_session_cookie(request: Request, response: Response) -> None:
    """Set the session cookie on the response when this request made a new session."""
    found: _Current | None = getattr(request.state, _STATE, None)
    if found is None or not found.changed:
        return
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        found.cookie,
        max_age=max(0, found.session.expires_at - int(_now(request).timestamp())),
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        path="/",
    )


class PageRedirect(Exception):
    """Leave the page for another one (303); rendered by the handler web installs."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class PageError(Exception):
    """Show the error page with a translated message for a stable code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


def login_url(request: Request) -> str:
    """/login, then back: to this page, or for a form's POST to the page the form is on (the
    POST's own path would be opened with a GET after login and answer 405)."""
    if request.method in ("GET", "HEAD"):
        query = f"?{request.url.query}" if request.url.query else ""
        target: str | None = request.url.path + query
    else:
        target = form_page(request)
    return "/login" if target is None else "/login?next=" + quote(target, safe="")


def form_page(request: Request) -> str | None:
    """The page a form posted to this path lives on: the path itself or the nearest one
    above it that a GET route serves (`/admin/refunds/rf_1/approve` → `/admin/refunds`,
    `/pay/ord_1/again` → `/pay/ord_1`, `/me/refunds` → `/me`). Not the Referer: every
    page is sent with `Referrer-Policy: no-referrer`, and a header is the client's word."""
    parts = request.url.path.rstrip("/").split("/")
    while len(parts) > 1:
        path = "/".join(parts)
        if _serves_get(request, path):
            return path
        parts.pop()
    return None


def _serves_get(request: Request, path: str) -> bool:
    scope = {**request.scope, "method": "GET", "path": path, "root_path": ""}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)


def home_for(principal: Principal) -> str:
    """Where a person lands after login: staff in the console, everyone else in /me."""
    return "/admin" if principal.role in STAFF_ROLES else "/me"


def logged_in(request: Request) -> Principal | None:
    """The logged-in person of this request, checked against the account (None: nobody).

    A disabled or deleted account is logged out at once; the account's locale becomes the
    page's language."""
    cached: tuple[Principal | None] | None = getattr(request.state, "web_principal", None)
    if cached is not None:
        return cached[0]
    web_session = current_session(request)
    principal = web_session.principal
    if principal is not None:
        database: Database = request.app.state.database
        with database.session_scope(read_only=True) as db:
            try:
                user = accounts.get_user(db, principal.id)
            except UserNotFound:
                user = None
            if (
                user is None
                or user.disabled_at is not None
                or user.role != principal.role.value
                or web_session.generation != user.web_session_generation  # logged out since
            ):
                principal = None
            else:
                remember_account_locale(request, user.locale)
    request.state.web_principal = (principal,)
    if principal is not None:
        kind = "staff" if principal.is_staff else principal.role.value
        context.set_actor(f"{kind}:{principal.id}")
    return principal


def page_principal(*roles: Role) -> Callable[[Request], Principal]:
    """A dependency for pages: the logged-in person when their role is one of `roles` (any
    person when none are given). Nobody logged in: redirect to /login?next=…; another
    role: the 403 page."""
    allowed = frozenset(roles) or PERSON_ROLES

    def dependency(request: Request) -> Principal:
        request.state.web_page = True
        principal = logged_in(request)
        if principal is None:
            raise PageRedirect(login_url(request))
        if principal.role not in allowed:
            raise PageError(403, "forbidden")
        return principal

    return dependency


def mark_page(request: Request) -> None:
    """A router dependency: errors of these routes are shown as pages, not problem+json."""
    request.state.web_page = True
