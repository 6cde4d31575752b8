"""create_app(): middleware, error handlers and routers — the composition root."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from knowpay import __version__
from knowpay.accounts import service as accounts_service
from knowpay.accounts.endpoints import router as accounts_router
from knowpay.auth.tokens import TokenService
from knowpay.catalog.endpoints import router as catalog_router
from knowpay.kit.clock import Clock, SystemClock
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database
from knowpay.kit.errors import install_error_handlers, problem_response
from knowpay.kit.middleware import BodySizeLimitMiddleware, RequestIdMiddleware

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
) -> FastAPI:
    """Build the knowpay ASGI application."""
    settings = settings or get_settings()
    database = database or Database(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.uses_insecure_secret and settings.environment == "production":
            raise RuntimeError("KNOWPAY_SECRET_KEY must be set in production")
        yield
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
    app.state.clock = clock or SystemClock()
    app.state.database = database
    app.state.secret_hasher = SecretHasher(settings.password_hash)
    app.state.token_service = TokenService(
        settings.secret_key.get_secret_value(), settings.access_token_ttl_s
    )
    app.state.api_key_resolver = accounts_service.resolve_api_key

    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)

    app.include_router(accounts_router)
    app.include_router(catalog_router)
    _add_health_routes(app, database)
    return app


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
