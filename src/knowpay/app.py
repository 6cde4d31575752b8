"""create_app(): middleware, error handlers and routers — the composition root."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import text

from knowpay import __version__
from knowpay.accounts import service as accounts_service
from knowpay.accounts.endpoints import router as accounts_router
from knowpay.alerts.endpoints import router as alerts_router
from knowpay.auth.dependencies import API_KEY_PREFIX, ApiKeyResolver
from knowpay.auth.principals import Principal
from knowpay.auth.tokens import TokenService
from knowpay.catalog.endpoints import router as catalog_router
from knowpay.channels.registry import ChannelRegistry
from knowpay.entitlements.endpoints import router as entitlements_router
from knowpay.gateway_notifications.endpoints import router as notifications_router
from knowpay.kit.clock import Clock, SystemClock
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.crypto import SecretBox, SecretHasher
from knowpay.kit.db import Database
from knowpay.kit.errors import Unauthorized, install_error_handlers, problem_response
from knowpay.kit.idempotency import IdempotencyMiddleware
from knowpay.kit.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from knowpay.orders.endpoints import router as orders_router
from knowpay.payments.endpoints import router as payments_router
from knowpay.payments.service import PaymentsContext
from knowpay.refunds.endpoints import router as refunds_router
from knowpay.refunds.service import RefundsContext
from knowpay.webhooks.endpoints import router as webhooks_router
from knowpay.worker.runner import Worker

logger = logging.getLogger("knowpay")

DESCRIPTION = """
knowpay is the payment center of a paid-knowledge platform.

* Money is `{"amount": 9900, "currency": "CNY"}`: an integer count of the currency's minor unit.
* Errors are `application/problem+json` with a stable `code` and the `request_id`.
* Authenticate with `Authorization: Bearer <api key>` (apps) or a token from `POST /v1/auth/token`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
    run_worker: bool | None = None,
) -> FastAPI:
    """Build the knowpay ASGI application. `run_worker` runs the background loops in this
    process (default: `worker.in_process`, else only on the embedded SQLite database)."""
    settings = settings or get_settings()
    database = database or Database(settings)
    if run_worker is None:
        in_process = settings.worker.in_process
        run_worker = database.dialect == "sqlite" if in_process is None else in_process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.uses_insecure_secret and settings.environment == "production":
            raise RuntimeError("KNOWPAY_SECRET_KEY must be set in production")
        worker = (
            Worker(settings, database, app.state.clock, app.state.channel_registry)
            if run_worker
            else None
        )
        if worker is not None:
            worker.start()
        yield
        if worker is not None:
            worker.stop()
        database.dispose()

    app = FastAPI(
        title="knowpay",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock = clock or SystemClock()
    app.state.database = database
    app.state.secret_hasher = SecretHasher(settings.password_hash)
    app.state.token_service = TokenService(
        settings.secret_key.get_secret_value(), settings.access_token_ttl_s
    )
    app.state.api_key_resolver = accounts_service.resolve_api_key
    app.state.channel_registry = registry = ChannelRegistry.from_settings(settings, clock)
    app.state.payments_context = payments_context = PaymentsContext(
        registry=registry, public_url=settings.public_url
    )
    app.state.refunds_context = RefundsContext(payments=payments_context, policy=settings.refunds)
    app.state.secret_box = SecretBox(settings.secret_key.get_secret_value())

    install_error_handlers(app)
    app.add_middleware(IdempotencyMiddleware, resolve_scope=_idempotency_scope)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)

    app.include_router(accounts_router)
    app.include_router(catalog_router)
    app.include_router(orders_router)
    app.include_router(payments_router)
    app.include_router(entitlements_router)
    app.include_router(notifications_router)
    app.include_router(alerts_router)
    app.include_router(webhooks_router)
    app.include_router(refunds_router)
    _add_health_routes(app, database)
    return app


def _idempotency_scope(request: Request) -> str | None:
    """Whose Idempotency-Key this is: the caller found as `current_principal` finds it, or
    None when they cannot be authenticated (the endpoint then answers 401 itself)."""
    scheme, secret = get_authorization_scheme_param(request.headers.get("Authorization"))
    if scheme.lower() != "bearer" or not secret:
        return None
    state = request.app.state
    principal: Principal | None
    try:
        if secret.startswith(API_KEY_PREFIX):
            resolver: ApiKeyResolver = state.api_key_resolver
            database: Database = state.database
            with database.session_scope(read_only=True) as session:
                principal = resolver(session, secret)
        else:
            token_service: TokenService = state.token_service
            clock: Clock = state.clock
            principal = token_service.verify(secret, clock.now())
    except Unauthorized:
        return None
    return principal.scope_key if principal is not None else None


def _add_health_routes(app: FastAPI, database: Database) -> None:
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["operations"], response_model=None)
    def readyz(request: Request) -> JSONResponse | dict[str, str]:
        """The database answers."""
        try:
            with database.engine.connect() as connection:
                connection.execute(text("select 1"))
        except Exception:
            logger.exception("readiness check failed")
            return problem_response(
                request,
                status=503,
                code="database_unavailable",
                title="Not ready",
                detail="The database does not answer.",
            )
        return {"status": "ready", "database": database.dialect}
