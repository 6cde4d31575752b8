"""The payer's side (a "scan with phone" page for Native code_url, the pay sheet of JSAPI and
H5) and the sandbox's own control endpoints: keys, faults, trade inspection, pay by API."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from knowpay.sandbox.wechatpay.simulator import Simulator
from knowpay.sandbox.wechatpay.store import Faults, Trade

_STYLE = """
body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;background:#ededed;
margin:0;display:flex;justify-content:center}.sheet{background:#fff;margin:40px 12px;padding:24px;
border-radius:12px;max-width:380px;width:100%;box-shadow:0 2px 12px #0002}h1{font-size:18px}
.amount{font-size:34px;font-weight:600;margin:16px 0}.muted{color:#888;font-size:13px}
button{width:100%;padding:12px;border:0;border-radius:8px;font-size:16px;margin-top:10px}
.pay{background:#07c160;color:#fff}.fail{background:#f2f2f2;color:#e64340}
"""


def _page(title: str, inner: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><div class='sheet'>{inner}</div></body></html>"
    )


def _trade_sheet(request: Request, trade: Trade, redirect: str) -> str:
    root = request.scope.get("root_path", "")
    yuan = f"¥{trade.total // 100}.{trade.total % 100:02d}"
    head = (
        f"<h1>微信支付 · WeChat Pay sandbox</h1><p>{escape(trade.description)}</p>"
        f"<div class='amount'>{yuan}</div>"
        f"<p class='muted'>{escape(trade.trade_type)} · {escape(trade.out_trade_no)} · "
        f"{escape(trade.trade_state)}</p>"
    )
    if trade.trade_state not in ("NOTPAY", "PAYERROR"):
        return head + f"<p>{escape(trade.trade_state_desc)}</p>"
    buttons = ""
    for outcome, label, css in (
        ("succeeded", "确认支付 Pay", "pay"),
        ("failed", "支付失败 Fail", "fail"),
    ):
        query = urlencode({"outcome": outcome, "redirect": redirect})
        action = f"{root}/_trades/{trade.out_trade_no}/pay?{query}"
        buttons += (
            f"<form method='post' action='{escape(action)}'>"
            f"<button class='{css}' type='submit'>{label}</button></form>"
        )
    return head + buttons


def build_router(sim: Simulator) -> APIRouter:
    router = APIRouter()

    @router.get("/scan", response_class=HTMLResponse)
    def scan(request: Request, code_url: str = "") -> HTMLResponse:
        """The phone that scans a Native QR: one code_url, or every unpaid Native trade."""
        token = parse_qs(urlsplit(code_url).query).get("pr", [""])[0] if code_url else ""
        if token:
            trade = sim.store.by_code(token)
            if trade is None:
                return _page("二维码无效", "<h1>二维码已失效 · unknown code_url</h1>")
            return _page("微信支付", _trade_sheet(request, trade, str(request.url)))
        with sim.store.lock:
            open_trades = [
                t
                for t in sim.store.trades.values()
                if t.trade_type == "NATIVE" and t.trade_state == "NOTPAY"
            ]
        sheets = "".join(_trade_sheet(request, t, str(request.url)) + "<hr>" for t in open_trades)
        return _page("扫一扫", sheets or "<h1>扫一扫 · nothing to scan</h1>")

    @router.get("/pay/{prepay_id}", response_class=HTMLResponse)
    def jsapi_sheet(prepay_id: str, request: Request) -> HTMLResponse:
        """The pay sheet WeChat shows for wx.requestPayment(package=prepay_id=…)."""
        trade = sim.store.by_prepay(prepay_id)
        if trade is None:
            return _page("支付失败", "<h1>prepay_id 无效</h1>")
        return _page("微信支付", _trade_sheet(request, trade, str(request.url)))

    @router.get("/checkmweb", response_class=HTMLResponse)
    def h5_sheet(request: Request, prepay_id: str = "", redirect_url: str = "") -> HTMLResponse:
        """The page an h5_url opens; after paying it returns to redirect_url when given."""
        trade = sim.store.by_prepay(prepay_id)
        if trade is None:
            return _page("支付失败", "<h1>商家参数格式有误 · unknown prepay_id</h1>")
        return _page("微信支付", _trade_sheet(request, trade, redirect_url or str(request.url)))

    @router.post("/_trades/{out_trade_no}/pay", response_model=None)
    def pay(out_trade_no: str, outcome: str = "succeeded", redirect: str = "") -> Response:
        """The payer's click (or a test's call): `outcome` succeeded or failed."""
        if outcome not in ("succeeded", "failed"):
            return JSONResponse({"code": "PARAM_ERROR", "message": "outcome?"}, status_code=400)
        before = sim.store.get(out_trade_no)
        if before is None:
            return JSONResponse({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, 404)
        if before.trade_state not in ("NOTPAY", "PAYERROR"):
            return JSONResponse(
                {
                    "code": "TRADE_STATE",
                    "message": before.trade_state_desc,
                    "trade_state": before.trade_state,
                },
                status_code=409,
            )
        trade = sim.pay(out_trade_no, outcome == "succeeded")
        if redirect:
            return RedirectResponse(redirect, status_code=303)
        return JSONResponse(_inspect(sim, trade) if trade else {})

    @router.get("/_trades/{out_trade_no}")
    def inspect(out_trade_no: str) -> JSONResponse:
        trade = sim.store.get(out_trade_no)
        if trade is None:
            return JSONResponse({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, 404)
        return JSONResponse(_inspect(sim, trade))

    @router.get("/_keys")
    def keys() -> dict[str, Any]:
        """What a merchant needs to be wired to this simulator (`knowpay demo` reads it)."""
        return sim.keys.public_parts()

    @router.get("/_faults")
    def list_faults() -> dict[str, Any]:
        with sim.store.lock:
            return {
                "global": sim.store.faults[None].as_json() if None in sim.store.faults else None,
                "trades": {k: f.as_json() for k, f in sim.store.faults.items() if k is not None},
            }

    @router.post("/_faults")
    async def set_faults(request: Request) -> JSONResponse:
        """`{"out_trade_no"?: …, "lose_notification"?: …, …}`; without out_trade_no: global."""
        data = await request.json()
        if not isinstance(data, dict):
            return JSONResponse({"code": "PARAM_ERROR", "message": "an object"}, 400)
        out_trade_no = data.pop("out_trade_no", None)
        try:
            faults = Faults.from_json(data)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"code": "PARAM_ERROR", "message": str(exc)}, 400)
        with sim.store.lock:
            sim.store.faults[out_trade_no] = faults
        sim.release_held()  # lifting out_of_order sends what it held, newest first
        return JSONResponse({"out_trade_no": out_trade_no, **faults.as_json()})

    @router.get("/_notifications")
    def notifications(out_trade_no: str | None = None) -> list[dict[str, Any]]:
        """Every callback (or one trade's) and each try to deliver it, with the answers."""
        found = sim.notifier.for_trade(out_trade_no) if out_trade_no else sim.notifier.every()
        return [d.summary() for d in found]

    @router.post("/_reset", status_code=204)
    def reset() -> Response:
        """Clear every fault and drop scheduled callbacks."""
        sim.reset()
        return Response(status_code=204)

    @router.delete("/_faults", status_code=204)
    def clear_faults() -> Response:
        with sim.store.lock:
            sim.store.faults.clear()
        sim.release_held()
        return Response(status_code=204)

    return router


def _inspect(sim: Simulator, trade: Trade) -> dict[str, Any]:
    with sim.store.lock:
        refunds = [
            r.resource(sim.keys.mchid)
            for r in sim.store.refunds.values()
            if r.out_trade_no == trade.out_trade_no
        ]
    return {
        **trade.transaction(),
        "refunds": refunds,
        "notifications": [d.summary() for d in sim.notifier.for_trade(trade.out_trade_no)],
    }
