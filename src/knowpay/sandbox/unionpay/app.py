"""The UnionPay simulator's routes (mounted at /unionpay by the sandbox app).

Gateway:  POST /gateway/api/frontTransReq.do (the browser's front consume → the card page)
          POST /gateway/api/backTransReq.do (refund) · POST /gateway/api/queryTrans.do
File host: POST / (file transfer, txnType 76: the day's settlement file; UnionPay serves it
          at the root of filedownload.95516.com)
Payer:    POST /pay/{token} (outcome=pay|cancel)
Admin:    GET /_keys · GET|POST|DELETE /_faults · DELETE /_faults/{id} · POST /_pay ·
          GET /_trades/{order_id} · GET /_notifications · POST /_reset
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from knowpay.sandbox.common.controls import add_control_routes
from knowpay.sandbox.unionpay import pages
from knowpay.sandbox.unionpay.book import Consume, TxnError
from knowpay.sandbox.unionpay.faults import FaultKind, Target
from knowpay.sandbox.unionpay.simulator import BACK, FILE, FRONT, QUERY, UnionPaySimulator

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

ANSWER_TYPE = "text/plain;charset=UTF-8"
UNAVAILABLE = "<html><body>Service Unavailable</body></html>"


class FaultIn(BaseModel):
    """A fault to inject (see knowpay.sandbox.unionpay.faults)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    order_id: str | None = None
    times: int | None = Field(default=None, ge=1)
    count: int = Field(default=10, ge=1, le=100)
    delay_s: float = Field(default=1.0, ge=0, le=3600)
    amount: str = Field(default="1", pattern=r"^[0-9]{1,12}$")
    fields: dict[str, str] = Field(default_factory=dict)
    status: int = Field(default=503, ge=500, le=599)
    seconds: float = Field(default=30.0, ge=0, le=600)
    endpoints: list[str] = Field(default_factory=list)
    target: Target = "notification"


class PayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str


async def _form(request: Request) -> dict[str, str]:
    """A form body, UTF-8 (the only encoding the simulator accepts)."""
    body = (await request.body()).decode("latin-1")
    return dict(parse_qsl(body, keep_blank_values=True, encoding="utf-8"))


def create_app(config: SandboxConfig) -> FastAPI:
    """The UnionPay gateway simulator."""
    sim = UnionPaySimulator(config)
    app = FastAPI(title="UnionPay simulator", docs_url=None, redoc_url=None)
    app.state.simulator = sim

    def server_call(endpoint: str, params: dict[str, str], handle: Callable[..., str]) -> Response:
        status, stall = sim.api_faults(endpoint, params)
        if status is not None:
            return Response(
                "<html><body>Service Unavailable</body></html>", status, media_type="text/html"
            )
        text = handle(params)
        if stall:
            time.sleep(stall)
        return Response(text.encode("utf-8"), media_type=ANSWER_TYPE)

    @app.post(f"/gateway/api/{BACK}", include_in_schema=False)
    async def back_trans(request: Request) -> Response:
        return await run_in_threadpool(server_call, BACK, await _form(request), sim.back)

    @app.post(f"/gateway/api/{QUERY}", include_in_schema=False)
    async def query_trans(request: Request) -> Response:
        return await run_in_threadpool(server_call, QUERY, await _form(request), sim.query)

    @app.post("/", include_in_schema=False)
    async def file_trans(request: Request) -> Response:
        return await run_in_threadpool(server_call, FILE, await _form(request), sim.file_transfer)

    @app.post(f"/gateway/api/{FRONT}", response_class=HTMLResponse, include_in_schema=False)
    async def front_trans(request: Request) -> Response:
        params = await _form(request)
        status, _ = sim.api_faults(FRONT, params)
        if status is not None:
            return HTMLResponse(UNAVAILABLE, status)
        try:
            consume = sim.front(params)
        except TxnError as error:
            return HTMLResponse(pages.error(error.code, error.message))
        return HTMLResponse(pages.card_page(consume, f"{sim.base_url}/pay/{consume.token}"))

    @app.post("/pay/{token}", response_class=HTMLResponse)
    def pay_page(token: str, outcome: Annotated[Literal["pay", "cancel"], Form()]) -> Response:
        consume = sim.book.by_token(token)
        if consume is None:
            raise HTTPException(404, "交易不存在")
        if outcome == "cancel":
            return HTMLResponse(pages.cancelled(consume))
        try:
            front_fields = sim.pay(consume)
        except TxnError as error:
            return HTMLResponse(pages.error(error.code, error.message), status_code=409)
        if consume.front_url:
            return HTMLResponse(pages.return_to_merchant(consume.front_url, front_fields))
        return HTMLResponse(pages.paid(consume))

    _add_admin_routes(app, sim)
    return app


def _add_admin_routes(app: FastAPI, sim: UnionPaySimulator) -> None:
    @app.get("/_keys")
    def keys() -> dict[str, str]:
        """mer_id, the merchant certificate (and its key when generated), UnionPay's CA, URLs."""
        return sim.keys()

    @app.post("/_pay")
    def pay(body: PayIn) -> dict[str, Any]:
        """Pay the consume with this orderId that was opened last (no browser needed)."""
        consume = _consume(sim, body.order_id)
        try:
            sim.pay(consume)
        except TxnError as error:
            raise HTTPException(409, f"{error.code} {error.message}") from error
        return sim.trade(consume)

    @app.get("/_trades/{order_id}")
    def trade(order_id: str) -> dict[str, Any]:
        return sim.trade(_consume(sim, order_id))

    def notifications(order_id: str | None = None) -> list[dict[str, Any]]:
        """Every back notification and each send of it, with the merchant's answers."""
        return sim.notifier.log(order_id)

    def reset() -> None:
        """Clear the faults and forget notifications (pending sends are never made)."""
        sim.faults.clear()
        sim.notifier.reset()

    add_control_routes(
        app, faults=sim.faults, fault_model=FaultIn, notifications=notifications, reset=reset
    )


def _consume(sim: UnionPaySimulator, order_id: str) -> Consume:
    consume = sim.book.latest(order_id)
    if consume is None:
        raise HTTPException(404, "交易不存在")
    return consume
