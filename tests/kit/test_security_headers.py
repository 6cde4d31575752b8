"""Security headers, per-route Content-Security-Policy and CORS (issue #8)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Response
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import ValidationError

from knowpay.app import create_app
from knowpay.channels.unionpay import transformers as tf
from knowpay.gateway_notifications.forms import router as forms_router
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import SecurityHeaderSettings, Settings, load_settings
from knowpay.kit.db import Database
from tests.builders import Builders

FRONT_URL = "https://gateway.test.95516.com/gateway/api/frontTransReq.do"


def _app(settings: Settings, clock: FrozenClock, database: Database, **update: object) -> FastAPI:
    return create_app(
        settings.model_copy(update=update), clock=clock, database=database, run_worker=False
    )


def _sha256_source(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"


def _directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def test_api_responses_carry_the_security_headers_but_no_hsts_over_http(
    client: TestClient,
) -> None:
    for response in (
        client.get("/healthz"),
        client.get("/v1/orders"),  # 401 problem
        client.get("/v1/nothing-here"),  # 404 problem
    ):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        policy = _directives(headers["content-security-policy"])
        assert policy["default-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["object-src"] == ["'none'"]
        assert "strict-transport-security" not in headers


def test_api_answers_with_tokens_and_secrets_are_never_cached(
    client: TestClient, build: Builders
) -> None:
    """A login token, a new webhook secret, any API answer (personal data): `no-store`, as
    RFC 6749 5.1 asks of a token response and as knowpay's own pages already are. Before,
    only the pages were marked, so a shared or browser cache could keep a bearer token."""
    app = build.app()
    build.buyer(app, email="cache@example.com", password="cache-password-1")
    token = client.post(
        "/v1/auth/token", data={"username": "cache@example.com", "password": "cache-password-1"}
    )
    endpoint = client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/k", "events": ["*"]},
        headers=app.headers,
    )
    assert (token.status_code, endpoint.status_code) == (200, 201)
    for response in (token, endpoint, client.get("/v1/orders")):
        assert response.headers["cache-control"] == "no-store"
    # Outside /v1/ nothing is added: the static files keep their own.
    static = client.get("/static/knowpay.css")
    assert static.headers["cache-control"] == "max-age=3600"


def test_an_api_endpoints_own_cache_control_wins(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = _app(settings, clock, database)

    @app.get("/v1/cacheable-for-the-test")
    def cacheable() -> Response:
        return Response("{}", headers={"Cache-Control": "private, max-age=60"})

    with TestClient(app) as client:
        assert client.get("/v1/cacheable-for-the-test").headers["cache-control"] == (
            "private, max-age=60"
        )


def test_a_refused_oversized_body_has_them_too(client: TestClient) -> None:
    response = client.post("/v1/orders", content=b"x" * 2_000_000)
    assert response.status_code == 413
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in response.headers


def test_hsts_only_over_https(settings: Settings, clock: FrozenClock, database: Database) -> None:
    app = _app(settings, clock, database)
    with TestClient(app, base_url="https://testserver") as tls:
        assert tls.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
    with TestClient(app) as plain:
        spoofed = plain.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in spoofed.headers  # not from a trusted proxy
    behind_proxy = _app(settings, clock, database, trusted_proxies=["10.0.0.0/8"])
    with TestClient(behind_proxy, client=("10.0.0.2", 1234)) as proxied:
        forwarded = proxied.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" in forwarded.headers
    public_https = _app(
        settings,
        clock,
        database,
        public_url="https://pay.example.com",
        security_headers=SecurityHeaderSettings(hsts_include_subdomains=True),
    )
    with TestClient(public_https) as client:
        assert (
            client.get("/healthz").headers["strict-transport-security"]
            == "max-age=31536000; includeSubDomains"
        )


def test_swagger_ui_gets_a_policy_that_runs_exactly_its_own_inline_script(
    client: TestClient,
) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    policy = _directives(page.headers["content-security-policy"])
    [inline] = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    assert _sha256_source(inline) in policy["script-src"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    # What the page loads is allowed: the bundle and stylesheet, the favicon, the schema.
    for url in re.findall(r'(?:src|href)="(https://[^"]+)"', page.text):
        host = "https://" + url.split("/")[2]
        kind = "script-src" if url.endswith(".js") else "style-src"
        if "favicon" in url or url.endswith(".png"):
            kind = "img-src"
        assert host in policy[kind], (url, policy[kind])
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert client.get("/openapi.json").status_code == 200
    redirect = client.get("/docs/oauth2-redirect")
    [handler] = re.findall(r"<script>(.*?)</script>", redirect.text, flags=re.DOTALL)
    redirect_policy = _directives(redirect.headers["content-security-policy"])
    assert _sha256_source(handler) in redirect_policy["script-src"]


@pytest.fixture
def forms_client(
    settings: Settings, clock: FrozenClock, database: Database
) -> Iterator[TestClient]:
    updated = settings.model_copy(
        update={"unionpay": settings.unionpay.model_copy(update={"front_url": FRONT_URL})}
    )
    app = create_app(updated, clock=clock, database=database, run_worker=False)
    if not any(route.path == "/forms/unionpay" for route in iter_route_contexts(app.routes)):
        app.include_router(forms_router)  # until app.py mounts the page itself
    with TestClient(app) as client:
        yield client


def test_the_gateway_form_may_post_only_to_the_gateway_and_run_only_its_handler(
    forms_client: TestClient,
) -> None:
    page = forms_client.get("/forms/unionpay", params={"f": tf.encode_form({"orderId": "p1"})})
    assert page.status_code == 200, page.text
    policy = _directives(page.headers["content-security-policy"])
    assert policy["form-action"] == ["https://gateway.test.95516.com"]
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    [handler] = re.findall(r'onload="([^"]+)"', page.text)
    assert policy["script-src"] == ["'unsafe-hashes'", _sha256_source(handler)]


def test_policies_can_be_set_per_path_prefix(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = _app(
        settings,
        clock,
        database,
        security_headers=SecurityHeaderSettings(
            csp_by_prefix={"/v1/": "default-src 'none'; frame-ancestors 'none'"}
        ),
    )
    with TestClient(app) as client:
        assert (
            client.get("/v1/orders").headers["content-security-policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
        assert "default-src 'self'" in client.get("/healthz").headers["content-security-policy"]


# CORS -------------------------------------------------------------------------------------


def test_by_default_no_origin_may_call_the_api_from_a_browser(client: TestClient) -> None:
    simple = client.get("/healthz", headers={"Origin": "https://shop.example.com"})
    assert "access-control-allow-origin" not in simple.headers
    preflight = client.options(
        "/v1/orders",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_only_the_configured_origins_may_and_never_with_credentials(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    app = _app(settings, clock, database, cors_origins=["https://shop.example.com"])
    with TestClient(app) as client:
        preflight = client.options(
            "/v1/orders",
            headers={
                "Origin": "https://shop.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example.com"
        assert "access-control-allow-credentials" not in preflight.headers
        allowed = client.get("/healthz", headers={"Origin": "https://shop.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
        assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
        other = client.get("/healthz", headers={"Origin": "https://evil.example.net"})
        assert "access-control-allow-origin" not in other.headers
        denied = client.options(
            "/v1/orders",
            headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"},
        )
        assert denied.status_code == 400
        assert "access-control-allow-origin" not in denied.headers


@pytest.mark.parametrize(
    "origins", ["*", "https://*.example.com", "https://shop.example.com/path", "shop.example.com"]
)
def test_a_wildcard_or_malformed_origin_is_refused_at_start(origins: str) -> None:
    with pytest.raises(ValidationError):
        load_settings(cors_origins=origins)


def test_origins_read_from_the_environment_as_a_comma_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KNOWPAY_CORS_ORIGINS", "https://a.example.com, https://b.example.com:8443/")
    monkeypatch.setenv("KNOWPAY_TRUSTED_PROXIES", "10.0.0.0/8,::1")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example.com", "https://b.example.com:8443"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "::1"]
