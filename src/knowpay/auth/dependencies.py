"""FastAPI dependencies that turn the Authorization header into a Principal."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from knowpay.auth.principals import Principal, Role
from knowpay.auth.tokens import TokenService
from knowpay.kit import context
from knowpay.kit.errors import Forbidden, Unauthorized
from knowpay.kit.web import AppClock, DbSession

API_KEY_PREFIX = "kp_"


class InvalidApiKey(Unauthorized):
    code, title = "invalid_api_key", "The API key is not valid"


_bearer = HTTPBearer(auto_error=False, description="An app's API key or a user's access token")


class ApiKeyResolver(Protocol):
    """Filled by the accounts domain at start-up: API key → the app principal, or None."""

    def __call__(self, session: Session, api_key: str) -> Principal | None: ...


def _token_service(request: Request) -> TokenService:
    service: TokenService = request.app.state.token_service
    return service


async def current_principal(
    request: Request,
    session: DbSession,
    clock: AppClock,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller; 401 problem+json when there is none or it is not valid.
    Runs on the event loop: only an API key not yet resolved in this request needs the
    database (a worker thread); an access token is checked in memory."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "Send `Authorization: Bearer <api key or access token>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    secret = credentials.credentials
    if secret.startswith(API_KEY_PREFIX):
        principal = _remembered_api_key_principal(request, secret)
        if principal is None:
            resolver: ApiKeyResolver = request.app.state.api_key_resolver
            principal = await run_in_threadpool(_look_up_and_let_go, resolver, session, secret)
        if principal is None:
            raise InvalidApiKey("The API key is unknown or revoked.")
    else:
        principal = _token_service(request).verify(secret, clock.now())
    request.state.principal = principal
    context.set_actor(actor_name(principal))
    return principal


def _look_up_and_let_go(
    resolver: ApiKeyResolver, session: Session, secret: str
) -> Principal | None:
    """Look the API key up, then end that transaction so its connection goes back to the pool.
    Held while the endpoint waits for a worker thread, it could be the one the busy threads
    wait for: under a burst every thread would sit on the pool until its timeout."""
    principal = resolver(session, secret)
    session.commit()  # after an error the request's own rollback ends it instead
    return principal


def remember_api_key_principal(request: Request, secret: str, principal: Principal | None) -> None:
    """Keep what an API key resolved to for the rest of this request (the idempotency layer
    looks the key up before the endpoint runs; one lookup per request is enough)."""
    if principal is not None:
        request.state.api_key_principal = (hashlib.sha256(secret.encode()).digest(), principal)


def _remembered_api_key_principal(request: Request, secret: str) -> Principal | None:
    remembered = getattr(request.state, "api_key_principal", None)
    if remembered is None:
        return None
    digest, principal = remembered
    # Only for the very key it was resolved from (compare digests in constant time).
    if not hmac.compare_digest(digest, hashlib.sha256(secret.encode()).digest()):
        return None
    assert isinstance(principal, Principal)
    return principal


def actor_name(principal: Principal) -> str:
    """How the audit log names a caller: `staff:usr_…`, `app:app_…`, `buyer:usr_…`."""
    kind = "staff" if principal.is_staff else principal.role.value
    return f"{kind}:{principal.id}"


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets only the given roles through (403 for others)."""
    allowed = frozenset(roles)

    async def _check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"This needs one of the roles: {names}.")
        return principal

    return _check
