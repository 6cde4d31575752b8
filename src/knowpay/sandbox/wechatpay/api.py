"""The WeChat Pay API v3 paths, from the gateway's side: every call's Authorization is checked
and every answer signed; injected faults (status, delay, forged answer) apply per trade."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from knowpay.sandbox.wechatpay import crypto
from knowpay.sandbox.wechatpay.bill import trade_bill
from knowpay.sandbox.wechatpay.simulator import Simulator, WechatError
from knowpay.sandbox.wechatpay.store import TRADE_TYPES, Faults, Trade, beijing

_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,32}$")


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WechatError(400, "PARAM_ERROR", "请求体不是合法的JSON") from exc
    if not isinstance(data, dict):
        raise WechatError(400, "PARAM_ERROR", "请求体必须是JSON对象")
    return data


def _required(data: dict[str, Any], *path: str) -> Any:
    value: Any = data
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "":
        raise WechatError(400, "PARAM_ERROR", f"字段 /body/{'/'.join(path)} 为必填项")
    return value


def _fen(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise WechatError(400, "PARAM_ERROR", f"{path} 必须是正整数(分)")
    return value


def build_router(sim: Simulator) -> APIRouter:
    router = APIRouter(prefix="/v3")

    async def enter(
        request: Request, out_trade_no: Callable[[bytes], str | None]
    ) -> tuple[bytes, Faults]:
        """Authenticate first, then apply the trade's (or the global) API faults."""
        body = await request.body()
        sim.authenticate(request, body)
        faults = sim.store.faults_for(out_trade_no(body))
        if faults.api_delay_s > 0:
            await asyncio.sleep(faults.api_delay_s)
        if faults.api_status:
            code = faults.api_code or (
                "SYSTEM_ERROR" if faults.api_status >= 500 else "INVALID_REQUEST"
            )
            raise WechatError(faults.api_status, code, "故障注入: injected fault")
        return body, faults

    @router.post("/pay/transactions/{kind}")
    async def prepay(kind: str, request: Request) -> Response:
        if kind not in TRADE_TYPES:
            raise WechatError(404, "NOT_FOUND", "无此接口")
        body, faults = await enter(request, _out_trade_no_in_body)
        trade = _open_trade(sim, kind, _json(body))
        if kind == "native":
            answer = {"code_url": f"weixin://wxpay/bizpayurl?pr={trade.code_token}"}
        elif kind == "jsapi":
            answer = {"prepay_id": trade.prepay_id}
        else:
            package = str(secrets.randbelow(10**10)).zfill(10)
            url = f"{sim.public_url}/checkmweb?prepay_id={trade.prepay_id}&package={package}"
            answer = {"h5_url": url}
        return sim.signed(200, answer, forge=faults.forge_response)

    @router.get("/pay/transactions/out-trade-no/{out_trade_no}")
    async def query(out_trade_no: str, request: Request) -> Response:
        _, faults = await enter(request, lambda _body: out_trade_no)
        _check_mchid(sim, request.query_params.get("mchid"))
        trade = sim.store.get(out_trade_no)
        if trade is None:
            raise WechatError(404, "ORDER_NOT_EXIST", "订单不存在")
        return sim.signed(200, trade.transaction(), forge=faults.forge_response)

    @router.get("/pay/transactions/id/{transaction_id}")
    async def query_by_id(transaction_id: str, request: Request) -> Response:
        trade = sim.store.by_transaction(transaction_id)
        _, faults = await enter(request, lambda _body: trade.out_trade_no if trade else None)
        _check_mchid(sim, request.query_params.get("mchid"))
        if trade is None:
            raise WechatError(404, "ORDER_NOT_EXIST", "订单不存在")
        return sim.signed(200, trade.transaction(), forge=faults.forge_response)

    @router.post("/pay/transactions/out-trade-no/{out_trade_no}/close")
    async def close(out_trade_no: str, request: Request) -> Response:
        body, faults = await enter(request, lambda _body: out_trade_no)
        _check_mchid(sim, _json(body).get("mchid"))
        trade = sim.store.close(out_trade_no)
        if trade is None:
            raise WechatError(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade.trade_state in ("SUCCESS", "REFUND"):
            raise WechatError(400, "ORDERPAID", "该订单已支付")
        return sim.signed(204, None, forge=faults.forge_response)

    @router.post("/refund/domestic/refunds")
    async def refund(request: Request) -> Response:
        body, faults = await enter(request, _out_trade_no_in_body)
        return sim.signed(200, _refund(sim, _json(body)), forge=faults.forge_response)

    @router.get("/refund/domestic/refunds/{out_refund_no}")
    async def refund_query(out_refund_no: str, request: Request) -> Response:
        found = sim.store.refunds.get(out_refund_no)
        _, faults = await enter(request, lambda _body: found.out_trade_no if found else None)
        if found is None:
            raise WechatError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return sim.signed(200, _refund_view(sim, found.out_refund_no), forge=faults.forge_response)

    @router.get("/bill/tradebill")
    async def tradebill(request: Request) -> Response:
        _, faults = await enter(request, _nobody)
        try:
            day = date.fromisoformat(request.query_params.get("bill_date", ""))
        except ValueError as exc:
            raise WechatError(400, "PARAM_ERROR", "bill_date 格式为 yyyy-MM-DD") from exc
        text = trade_bill(sim.store, day)
        if text is None:
            raise WechatError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        token = secrets.token_urlsafe(24)
        sim.bill_files[token] = raw = text.encode()
        answer = {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(raw, usedforsecurity=False).hexdigest(),
            "download_url": f"{sim.public_url}/v3/billdownload/file?token={token}",
        }
        return sim.signed(200, answer, forge=faults.forge_response)

    @router.get("/billdownload/file")
    async def bill_file(request: Request) -> Response:
        await enter(request, _nobody)
        raw = sim.bill_files.get(request.query_params.get("token", ""))
        if raw is None:
            raise WechatError(400, "INVALID_REQUEST", "下载地址无效或已过期")
        # WeChat does not sign file downloads: the merchant checks the signed hash instead.
        return Response(raw, media_type="text/plain; charset=utf-8")

    @router.get("/certificates")
    async def certificates(request: Request) -> Response:
        await enter(request, _nobody)
        certificate = sim.keys.certificate
        serial = format(certificate.serial_number, "X")
        pem = crypto.certificate_pem(certificate).encode()
        item = {
            "serial_no": serial,
            "effective_time": beijing(certificate.not_valid_before_utc),
            "expire_time": beijing(certificate.not_valid_after_utc),
            "encrypt_certificate": crypto.seal(sim.keys.apiv3_key, pem, "certificate"),
        }
        return sim.signed(200, {"data": [item]}, serial=serial)

    return router


def _nobody(_body: bytes) -> None:
    return None


def _out_trade_no_in_body(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("out_trade_no") if isinstance(data, dict) else None
    return str(value) if value else None


def _check_mchid(sim: Simulator, mchid: Any) -> None:
    if mchid != sim.keys.mchid:
        raise WechatError(400, "PARAM_ERROR", "mchid 与请求头中的商户号不一致")


def _open_trade(sim: Simulator, kind: str, data: dict[str, Any]) -> Trade:
    _check_mchid(sim, _required(data, "mchid"))
    if _required(data, "appid") != sim.keys.appid:
        raise WechatError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    out_trade_no = str(_required(data, "out_trade_no"))
    if not _OUT_TRADE_NO.match(out_trade_no):
        raise WechatError(400, "PARAM_ERROR", "out_trade_no 只能是数字、大小写字母_-|*@，6-32位")
    total = _fen(_required(data, "amount", "total"), "/body/amount/total")
    currency = str(data["amount"].get("currency") or "CNY")
    description = str(_required(data, "description"))
    notify_url = str(_required(data, "notify_url"))
    openid = str(_required(data, "payer", "openid")) if kind == "jsapi" else None
    client_ip = None
    if kind == "h5":
        client_ip = str(_required(data, "scene_info", "payer_client_ip"))
        _required(data, "scene_info", "h5_info", "type")
    expires_at = None
    if data.get("time_expire"):
        try:
            expires_at = datetime.fromisoformat(str(data["time_expire"]))
        except ValueError as exc:
            raise WechatError(400, "PARAM_ERROR", "time_expire 格式错误") from exc
    with sim.store.lock:
        existing = sim.store.get(out_trade_no)
        if existing is not None:
            if existing.trade_state in ("SUCCESS", "REFUND"):
                raise WechatError(400, "ORDERPAID", "该订单已支付")
            if existing.trade_state == "CLOSED":
                raise WechatError(400, "ORDER_CLOSED", "该订单已关闭")
            same = (existing.trade_type, existing.total, existing.description) == (
                TRADE_TYPES[kind],
                total,
                description,
            )
            if not same:
                raise WechatError(403, "OUT_TRADE_NO_USED", "商户订单号重复")
            return existing
        return sim.store.open_trade(
            Trade(
                out_trade_no=out_trade_no,
                trade_type=TRADE_TYPES[kind],
                appid=sim.keys.appid,
                mchid=sim.keys.mchid,
                description=description,
                notify_url=notify_url,
                total=total,
                currency=currency,
                expires_at=expires_at,
                prepay_id=sim.store.new_prepay_id(),
                code_token=secrets.token_urlsafe(8),
                payer_openid=openid,
                payer_client_ip=client_ip,
                attach=data.get("attach"),
            )
        )


_REFUND_ERRORS = {
    "TRADE_NOT_PAID": (400, "INVALID_REQUEST", "订单未支付，不能退款"),
    "TOTAL_MISMATCH": (400, "PARAM_ERROR", "订单金额与原订单不一致"),
    "REFUND_EXCEEDS": (400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"),
}


def _refund(sim: Simulator, data: dict[str, Any]) -> dict[str, Any]:
    out_refund_no = str(_required(data, "out_refund_no"))
    refund_fen = _fen(_required(data, "amount", "refund"), "/body/amount/refund")
    total_fen = _fen(_required(data, "amount", "total"), "/body/amount/total")
    trade = None
    if data.get("out_trade_no"):
        trade = sim.store.get(str(data["out_trade_no"]))
    elif data.get("transaction_id"):
        trade = sim.store.by_transaction(str(data["transaction_id"]))
    if trade is None:
        raise WechatError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    outcome = sim.store.add_refund(
        trade,
        {
            "out_refund_no": out_refund_no,
            "refund": refund_fen,
            "total": total_fen,
            "reason": str(data.get("reason") or ""),
            "notify_url": data.get("notify_url"),
        },
    )
    if isinstance(outcome, str):
        raise WechatError(*_REFUND_ERRORS[outcome])
    created_refund, created = outcome
    answer = _refund_view(sim, out_refund_no)  # as accepted (PROCESSING), before it settles
    if created:
        sim.settle_refund_later(created_refund)
    return answer


def _refund_view(sim: Simulator, out_refund_no: str) -> dict[str, Any]:
    view = sim.store.refunds[out_refund_no].resource(sim.keys.mchid)
    return {k: v for k, v in view.items() if k not in ("refund_status", "mchid")}
