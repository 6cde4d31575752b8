"""The Alipay simulator's routes (mounted at /alipay by the sandbox app).

Gateway:  GET|POST /gateway.do (API calls answer JSON; page/wap pay open the cashier)
Buyer:    POST /cashier/{trade_no} (outcome=pay|fail) · GET|POST /qr/{token} (scan / pay)
Bills:    GET /bills/download?token=…
Admin:    GET /_keys · GET|POST|DELETE /_faults · DELETE /_faults/{id} · POST /_pay ·
          GET /_trades/{out_trade_no} · POST /_trades/{out_trade_no}/finish ·
          GET /_notifications · POST /_reset
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from knowpay.sandbox.alipay import gateway as gw
from knowpay.sandbox.alipay import pages
from knowpay.sandbox.alipay.book import PRECREATED, Trade, TradeError
from knowpay.sandbox.alipay.faults import FaultKind
from knowpay.sandbox.alipay.simulator import AlipaySimulator
from knowpay.sandbox.common.controls import add_control_routes

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

BROWSER_METHODS = frozenset({"alipay.trade.page.pay", "alipay.trade.wap.pay"})
JSON_TYPE = "text/html;charset=utf-8"  # what Alipay's gateway labels its JSON answers with
Outcome = Annotated[Literal["pay", "fail"], Form()]


class FaultIn(BaseModel):
    """A fault to inject (see knowpay.sandbox.alipay.faults)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    out_trade_no: str | None = None
    times: int | None = Field(default=None, ge=1)
    count: int = Field(default=10, ge=1, le=100)
    delay_s: float = Field(default=1.0, ge=0, le=3600)
    amount: str = "0.01"
    fields: dict[str, str] = Field(default_factory=dict)
    status: int = Field(default=503, ge=500, le=599)
    seconds: float = Field(default=30.0, ge=0, le=600)
    methods: list[str] = Field(default_factory=list)


class PayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_trade_no: str
    outcome: Literal["pay", "fail"] = "pay"


def _trade_json(trade: Trade) -> dict[str, Any]:
    return {
        "out_trade_no": trade.out_trade_no,
        "trade_no": trade.trade_no,
        "kind": trade.kind,
        "status": trade.status,
        "subject": trade.subject,
        "total_amount": f"{trade.total_amount:.2f}",
        "refunded": f"{trade.refunded:.2f}",
        "notify_url": trade.notify_url,
        "paid_at": trade.paid_at.isoformat() if trade.paid_at else None,
        "refunds": sorted(trade.refunds),
    }


def _params(request: Request, body: bytes) -> dict[str, str]:
    """Query and form parameters together, decoded as UTF-8 (the charset we accept)."""
    params = dict(request.query_params)
    if body and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        text = body.decode("latin-1")
        params.update(parse_qsl(text, keep_blank_values=True, encoding="utf-8"))
    return params


def create_app(config: SandboxConfig) -> FastAPI:
    """The Alipay gateway simulator."""
    sim = AlipaySimulator(config)
    app = FastAPI(title="Alipay simulator", docs_url=None, redoc_url=None)
    app.state.simulator = sim

    def gateway_call(params: dict[str, str]) -> Response:
        if params.get("method") in BROWSER_METHODS:
            return _open_cashier(params)
        status, stall = sim.api_faults(params)
        if stall:
            time.sleep(stall)
        if status is not None:
            return Response("<html><body>Bad Gateway</body></html>", status, media_type="text/html")
        return Response(sim.call(params), media_type=JSON_TYPE)

    def _open_cashier(params: dict[str, str]) -> Response:
        try:
            trade = sim.open_cashier(params)
        except gw.GatewayError as error:
            content = error.content
            return HTMLResponse(pages.error(content["sub_code"], content["sub_msg"]))
        except TradeError as error:
            return HTMLResponse(pages.error(error.sub_code, error.sub_msg))
        return HTMLResponse(pages.cashier(trade, f"{sim.base_url}/cashier/{trade.trade_no}"))

    @app.api_route("/gateway.do", methods=["GET", "POST"], include_in_schema=False)
    async def gateway_do(request: Request) -> Response:
        params = _params(request, await request.body())
        return await run_in_threadpool(gateway_call, params)

    def _settle(trade: Trade, outcome: str) -> Response:
        if outcome == "fail":  # the buyer's payment failed: the trade keeps waiting
            return HTMLResponse(pages.outcome(trade, paid=False))
        if not sim.pay(trade):
            return HTMLResponse(pages.outcome(trade, paid=False), status_code=409)
        target = sim.return_url(trade)
        if target:
            return RedirectResponse(target, status_code=303)
        return HTMLResponse(pages.outcome(trade, paid=True))

    @app.post("/cashier/{trade_no}", response_class=HTMLResponse)
    def cashier_pay(trade_no: str, outcome: Outcome = "pay") -> Response:
        trade = sim.book.get(trade_no=trade_no)
        if trade is None:
            raise HTTPException(404, "交易不存在")
        return _settle(trade, outcome)

    @app.get("/qr/{token}", response_class=HTMLResponse)
    def scan(token: str) -> Response:
        trade = sim.book.scan(token)
        if trade is None:
            raise HTTPException(404, "二维码已失效")
        return HTMLResponse(pages.cashier(trade, f"{sim.base_url}/qr/{token}"))

    @app.post("/qr/{token}", response_class=HTMLResponse)
    def scan_and_pay(token: str, outcome: Outcome = "pay") -> Response:
        trade = sim.book.scan(token)
        if trade is None:
            raise HTTPException(404, "二维码已失效")
        return _settle(trade, outcome)

    @app.get("/bills/download")
    def bill_download(token: str) -> Response:
        found = sim.bill_file(token)
        if found is None:
            raise HTTPException(404, "账单链接已失效")
        name, data = found
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    _add_admin_routes(app, sim)
    return app


def _add_admin_routes(app: FastAPI, sim: AlipaySimulator) -> None:
    @app.get("/_keys")
    def keys() -> dict[str, str]:
        """The app id, seller id, gateway URL and public keys (and a generated app key)."""
        return sim.keys()

    @app.post("/_pay")
    def pay(body: PayIn) -> dict[str, Any]:
        """Pay (or fail) a trade by out_trade_no, scanning a QR trade first."""
        trade = sim.book.get_any(body.out_trade_no)
        if trade is None:
            raise HTTPException(404, "交易不存在")
        if trade.status == PRECREATED and trade.qr_token:
            sim.book.scan(trade.qr_token)
        if body.outcome == "pay" and not sim.pay(trade):
            raise HTTPException(409, f"trade is {trade.status}")
        return _trade_json(trade)

    @app.get("/_trades/{out_trade_no}")
    def trade(out_trade_no: str) -> dict[str, Any]:
        found = sim.book.get_any(out_trade_no)
        if found is None:
            raise HTTPException(404, "交易不存在")
        return _trade_json(found)

    @app.post("/_trades/{out_trade_no}/finish")
    def finish(out_trade_no: str) -> dict[str, Any]:
        """End the refund window: TRADE_FINISHED, notified."""
        found = sim.book.get(out_trade_no)
        if found is None or not sim.finish(found):
            raise HTTPException(409, "only a TRADE_SUCCESS trade can finish")
        return _trade_json(found)

    def notifications(out_trade_no: str | None = None) -> list[dict[str, Any]]:
        """Every notification and each try to deliver it, with knowpay's answers."""
        return sim.notifier.log(out_trade_no)

    def reset() -> None:
        """Clear the faults and forget notifications (pending retries are never sent)."""
        sim.faults.clear()
        sim.notifier.reset()

    add_control_routes(
        app, faults=sim.faults, fault_model=FaultIn, notifications=notifications, reset=reset
    )
