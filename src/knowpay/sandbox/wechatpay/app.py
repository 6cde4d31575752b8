"""create_app(config): the WeChat Pay simulator, mounted by the sandbox under /wechatpay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import Response

from knowpay.sandbox.wechatpay import api, pages
from knowpay.sandbox.wechatpay.simulator import Simulator, WechatError

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig


def create_app(config: SandboxConfig) -> FastAPI:
    """The simulator's ASGI app; `app.state.simulator` is its state (tests stop it with
    `app.state.simulator.stop()`)."""
    simulator = Simulator(config)
    app = FastAPI(
        title="WeChat Pay API v3 sandbox",
        description="The gateway side of WeChat Pay API v3, for development and tests.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.simulator = simulator

    @app.exception_handler(WechatError)
    async def wechat_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WechatError)
        return simulator.error(exc)

    app.include_router(api.build_router(simulator))
    app.include_router(pages.build_router(simulator))
    return app
