"""The simulators' ASGI app: each gateway's simulator is mounted under its own prefix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI

from knowpay.sandbox import alipay, paypal, stripe, unionpay, wechatpay


@dataclass
class SandboxConfig:
    """How the simulators are wired. Each simulator reads its own section."""

    public_url: str = "http://127.0.0.1:8100"
    """Where browsers and knowpay reach the simulators."""
    time_scale: float = 1.0
    """Notification retry delays are multiplied by this (tests use a small value)."""
    gateways: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per gateway: keys and ids (merchant public key, gateway private key, app id …)."""


SimulatorFactory = Callable[[SandboxConfig], FastAPI]


def _simulators() -> dict[str, SimulatorFactory]:
    """Gateway prefix → factory of its simulator app."""
    return {
        "wechatpay": wechatpay.create_app,
        "alipay": alipay.create_app,
        "unionpay": unionpay.create_app,
        "stripe": stripe.create_app,
        "paypal": paypal.create_app,
    }


def create_sandbox_app(config: SandboxConfig) -> FastAPI:
    """All simulators in one app: /alipay/…, /wechatpay/…"""
    app = FastAPI(title="knowpay sandbox: gateway simulators", docs_url="/docs", redoc_url=None)
    app.state.config = config

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for prefix, factory in _simulators().items():
        app.mount(f"/{prefix}", factory(config))
    return app
