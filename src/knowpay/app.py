"""create_app(): middleware, error handlers and routers — the composition root."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.telemetry import TelemetryConfig
from pydantic import SecretStr
from sqlalchemy.orm import Session

from knowpay import __version__
from knowpay.accounts import service as accounts_service
from knowpay.accounts.endpoints import router as accounts_router
from knowpay.alerts import service as alerts_service
from knowpay.alerts.endpoints import router as alerts_router
from knowpay.audit.endpoints import router as audit_router
from knowpay.auth.dependencies import API_KEY_PREFIX, ApiKeyResolver, remember_api_key_principal
from knowpay.auth.principals import Principal
from knowpay.auth.tokens import TokenService
from knowpay.catalog.endpoints import router as catalog_router
from knowpay.credentials.endpoints import router as credentials_router
from knowpay.credentials.refresh import credentials_refresher
from knowpay.credentials.service import channel_registry
from knowpay.entitlements.endpoints import router as entitlements_router
from knowpay.gateway_notifications.endpoints import router as notifications_router
from knowpay.gateway_notifications.forms import router as gateway_forms_router
from knowpay.kit.clock import Clock, SystemClock
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.crypto import SecretHasher, secret_box
from knowpay.kit.csrf import CsrfMiddleware, CsrfTokens
from knowpay.kit.db import Database
from knowpay.kit.errors import (
    Unauthorized,
    UnexpectedErrorMiddleware,
    install_error_handlers,
    problem_response,
)
from knowpay.kit.idempotency import IdempotencyMiddleware
from knowpay.kit.masking import install_log_masking
from knowpay.kit.metrics import METRICS_CONTENT_TYPE, HttpMetricsMiddleware, exposition
from knowpay.kit.middleware import (
    BodySizeLimitMiddleware,
    HeadAsGetMiddleware,
    RequestIdMiddleware,
)
from knowpay.kit.migrations import head_revision, revision_of
from knowpay.kit.openapi import install_openapi, problem_responses
from knowpay.kit.proxies import TrustedProxies
from knowpay.kit.ratelimit import RateLimiter, RateLimitMiddleware
from knowpay.kit.request_threads import limit_request_threads
from knowpay.kit.security_headers import (
    DOCS_CSP,
    SANDBOX_CSP,
    SecurityHeadersMiddleware,
    gateway_form_csp,
)
from knowpay.limits.endpoints import router as limits_router
from knowpay.limits.service import LimitPolicy
from knowpay.orders.endpoints import router as orders_router
from knowpay.orders.endpoints import top_ups_router
from knowpay.payments.endpoints import browser_router as payer_return_router
from knowpay.payments.endpoints import router as payments_router
from knowpay.payments.review import HeldPaymentReleaser
from knowpay.payments.service import PaymentsContext
from knowpay.reconciliation.endpoints import router as reconciliation_router
from knowpay.refunds.endpoints import router as refunds_router
from knowpay.refunds.service import RefundsContext
from knowpay.reports.endpoints import router as reports_router
from knowpay.risk.endpoints import router as risk_router
from knowpay.settlements.endpoints import router as settlements_router
from knowpay.subscriptions.endpoints import router as subscriptions_router
from knowpay.subscriptions.service import SubscriptionsContext
from knowpay.wallet.endpoints import router as wallet_router
from knowpay.web.console import console_router
from knowpay.web.routes import csrf_refusal_page, install_web_error_pages, web_router
from knowpay.webhooks.endpoints import events_router
from knowpay.webhooks.endpoints import router as webhooks_router
from knowpay.worker.backlog import BacklogCollector
from knowpay.worker.runner import Worker

logger = logging.getLogger("knowpay")

TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
"""FastAPI's OpenTelemetry hooks when `KNOWPAY_OPENTELEMETRY` is not set."""

DESCRIPTION = """
knowpay is the payment center of a paid-knowledge platform.

* Money is `{"amount": 9900, "currency": "CNY"}`: an integer count of the currency's minor unit.
* An integer in a request body is written as one: `9900`, never `9900.0` or `9.9e3` (a float
  cannot carry every amount exactly, so any other spelling is a 422 `validation_error`).
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
    base_settings = settings or get_settings()
    database = database or Database(base_settings)
    clock = clock or SystemClock()
    registry = channel_registry(base_settings, database, clock)
    settings = registry.settings
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
        limit_request_threads(settings.request_threads)
        refresher = credentials_refresher(
            base_settings, database, app.state.channel_registry, _publish_settings(app)
        )
        if worker is not None:
            worker.start()
        yield
        if worker is not None:
            worker.stop()
        if refresher is not None:
            refresher.stop()
        app.state.channel_registry.close()
        database.dispose()

    app = FastAPI(
        title="knowpay",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        # An unknown path is a 404 problem, not a redirect built from the Host header.
        redirect_slashes=False,
        telemetry=None if settings.opentelemetry else TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.base_settings = base_settings  # env/TOML alone, under the stored credentials
    app.state.clock = clock
    app.state.database = database
    app.state.secret_hasher = SecretHasher(settings.password_hash)
    app.state.token_service = TokenService(
        settings.secret_key.get_secret_value(), settings.access_token_ttl_s
    )
    app.state.api_key_resolver = accounts_service.resolve_api_key
    app.state.person_lookup = accounts_service.principal_of
    app.state.channel_registry = registry
    registry.health.set_listener(alerts_service.breaker_alerts(database, clock))
    app.state.payments_context = payments_context = PaymentsContext(
        registry=registry,
        public_url=settings.public_url,
        preference=tuple(settings.channels.preference),
        limit_policy=LimitPolicy(settings.limits.timezone, settings.limits.near_percent),
        return_url_origins=(*settings.cors_origins, *settings.return_url_origins),
    )
    app.state.risk_releaser = HeldPaymentReleaser(payments_context, clock)
    app.state.refunds_context = RefundsContext(
        payments=payments_context, policy=settings.refunds, wallet=settings.wallet
    )
    app.state.subscriptions_context = SubscriptionsContext.of(payments_context, settings)
    app.state.secret_box = secret_box(settings)
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    app.state.rate_limiter = RateLimiter(
        settings.rate_limits,
        redis_url=settings.redis_url,
        master_key=settings.secret_key.get_secret_value(),
    )
    app.state.csrf_tokens = CsrfTokens(settings.secret_key.get_secret_value())

    install_error_handlers(app)
    install_log_masking()
    # Added innermost first: metrics → request id → security headers → CORS → rate limits →
    # unexpected errors → body size → CSRF → idempotency → HEAD as GET → the routes.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(IdempotencyMiddleware, resolve_scope=_idempotency_scope)
    app.add_middleware(CsrfMiddleware, tokens=app.state.csrf_tokens, page_refusal=csrf_refusal_page)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(UnexpectedErrorMiddleware)
    _add_edge_middleware(app, settings)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware)  # outermost: every answer, with its whole time

    app.include_router(accounts_router)
    app.include_router(catalog_router)
    app.include_router(orders_router)
    app.include_router(top_ups_router)
    app.include_router(wallet_router)
    app.include_router(payments_router)
    app.include_router(payer_return_router)
    app.include_router(entitlements_router)
    app.include_router(notifications_router)
    app.include_router(gateway_forms_router)
    app.include_router(alerts_router)
    app.include_router(webhooks_router)
    app.include_router(events_router)
    app.include_router(refunds_router)
    app.include_router(settlements_router)
    app.include_router(subscriptions_router)
    app.include_router(reconciliation_router)
    app.include_router(reports_router)
    app.include_router(limits_router)
    app.include_router(risk_router)
    app.include_router(audit_router)
    app.include_router(credentials_router)
    # Web pages: cashier (/pay), buyer center (/me), login; the staff console adds its own.
    app.include_router(web_router)
    app.include_router(console_router)  # the staff console, /admin
    install_web_error_pages(app)
    _add_health_routes(app, database)
    install_openapi(app)
    return app


def _publish_settings(app: FastAPI) -> Callable[[Settings], None]:
    """Where stored credentials changed while the process runs go for requests to read."""

    def publish(settings: Settings) -> None:
        app.state.settings = settings

    return publish


def _add_edge_middleware(app: FastAPI, settings: Settings) -> None:
    """Rate limits, CORS and security headers (added in that order, so from the inside out)."""
    state = app.state
    limiter: RateLimiter = state.rate_limiter
    tokens: TokenService = state.token_service
    clock: Clock = state.clock

    def identity(secret: str) -> str | None:
        if secret.startswith(API_KEY_PREFIX):  # checked by the endpoint; 401s count per IP
            return "key:" + limiter.digest(secret)
        try:
            return "sub:" + tokens.verify(secret, clock.now()).scope_key
        except Unauthorized:
            return None

    app.add_middleware(
        RateLimitMiddleware,
        limiter=limiter,
        proxies=state.trusted_proxies,
        identity=identity,
        api_key_prefix=API_KEY_PREFIX,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
            expose_headers=[
                "X-Request-Id",
                "Idempotent-Replayed",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
            max_age=600,
        )
    app.add_middleware(
        SecurityHeadersMiddleware,
        settings=settings.security_headers,
        proxies=state.trusted_proxies,
        public_url=settings.public_url,
        policies={
            "/docs": DOCS_CSP,
            "/sandbox/": SANDBOX_CSP,
            "/sandbox/docs": DOCS_CSP,
            # The front URL may change while the process runs (stored credentials).
            "/forms/unionpay": lambda: gateway_form_csp(state.settings.unionpay.front_url),
        },
    )


def _idempotency_scope(request: Request, session: Session) -> str | None:
    """Whose Idempotency-Key this is: the caller found as `current_principal` finds it, or
    None when they cannot be authenticated (the endpoint then answers 401 itself). An API
    key found here is remembered for the request, so the endpoint does not look it up again."""
    scheme, secret = get_authorization_scheme_param(request.headers.get("Authorization"))
    if scheme.lower() != "bearer" or not secret:
        return None
    state = request.app.state
    principal: Principal | None
    try:
        if secret.startswith(API_KEY_PREFIX):
            resolver: ApiKeyResolver = state.api_key_resolver
            principal = resolver(session, secret)
            remember_api_key_principal(request, secret, principal)
        else:
            token_service: TokenService = state.token_service
            clock: Clock = state.clock
            principal = token_service.verify(secret, clock.now())
    except Unauthorized:
        return None
    return principal.scope_key if principal is not None else None


def _bears(request: Request, token: SecretStr) -> bool:
    """Whether the request carries `token` as its bearer token (compared in constant time)."""
    scheme, given = get_authorization_scheme_param(request.headers.get("Authorization"))
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), expected)


def _add_health_routes(app: FastAPI, database: Database) -> None:
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok", "version": __version__}

    @app.get(
        "/metrics", tags=["operations"], response_class=Response, responses=problem_responses(401)
    )
    def metrics(request: Request) -> Response:
        """Prometheus metrics: HTTP requests and latency by route, gateway calls and latency
        (breaker rejections too), of every server process (`serve --workers N`), and the
        backlog of background work. With `KNOWPAY_METRICS_TOKEN` set, only for
        `Authorization: Bearer <that token>`."""
        settings: Settings = request.app.state.settings
        if settings.metrics_token is not None and not _bears(request, settings.metrics_token):
            raise Unauthorized("GET /metrics needs the metrics token (KNOWPAY_METRICS_TOKEN).")
        return Response(exposition([BacklogCollector(database)]), media_type=METRICS_CONTENT_TYPE)

    @app.get("/readyz", tags=["operations"], response_model=None)
    def readyz(request: Request) -> JSONResponse | dict[str, str]:
        """The database answers, and its schema is the one this code needs (a process started
        from newer code before `knowpay migrate` would fail every request that reads a new
        column: it is kept out of the load balancer instead)."""
        try:
            with database.engine.connect() as connection:
                revision = revision_of(connection)
        except Exception:
            logger.exception("readiness check failed")
            return problem_response(
                request,
                status=503,
                code="database_unavailable",
                title="Not ready",
                detail="The database does not answer.",
            )
        if revision != head_revision():
            return problem_response(
                request,
                status=503,
                code="schema_outdated",
                title="Not ready",
                detail=f"The database schema is at revision {revision}, this code needs "
                f"{head_revision()}: run `knowpay migrate`.",
            )
        return {"status": "ready", "database": database.dialect}
