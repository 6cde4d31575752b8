"""The simulated WeChat Pay merchant platform: its keys, book of trades and callbacks, how it
checks a merchant's Authorization, and how it signs what it answers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from knowpay.sandbox.wechatpay import crypto
from knowpay.sandbox.wechatpay.keys import SimulatorKeys, load_keys
from knowpay.sandbox.wechatpay.notifier import Delivery, Notifier, envelope
from knowpay.sandbox.wechatpay.store import Refund, Store, Trade

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

CLOCK_SKEW_S = 300
REFUND_SETTLES_AFTER_S = 3.0
"""A refund is PROCESSING this long (times time_scale), then SUCCESS with its callback."""


class WechatError(Exception):
    """An answer in WeChat's error format: HTTP status and `{"code", "message"}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def request_target(request: Request) -> str:
    """The URL as the merchant signed it: the raw path (with any mount prefix) and query."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    target = bytes(raw_path).decode("latin-1")
    return target + ("?" + bytes(query).decode("latin-1") if query else "")


class Simulator:
    """Everything one simulated merchant platform holds."""

    def __init__(self, config: SandboxConfig) -> None:
        self.keys: SimulatorKeys = load_keys(config.gateways.get("wechatpay"))
        self.public_url = config.public_url.rstrip("/") + "/wechatpay"
        self.time_scale = config.time_scale
        self.store = Store()
        self.notifier = Notifier(self.keys, config.time_scale)
        self.bill_files: dict[str, bytes] = {}
        self._timers: list[threading.Timer] = []

    def reset(self) -> None:
        """Forget faults and pending callbacks (trades stay): a clean start for the next test."""
        with self.store.lock:
            self.store.faults.clear()
        self.notifier.cancel_pending()

    def release_held(self) -> None:
        """Send, newest first, the held callbacks of every trade no longer out of order (the
        control endpoints call this whenever faults change)."""
        for out_trade_no in sorted(self.notifier.held_trades()):
            if not self.store.faults_for(out_trade_no).out_of_order:
                self.notifier.release(out_trade_no)

    def stop(self) -> None:
        """End callback retries and pending refund settlements (tests call this)."""
        self.notifier.stop()
        for timer in self._timers:
            timer.cancel()

    # Merchant → us ------------------------------------------------------------------------

    def authenticate(self, request: Request, body: bytes) -> None:
        """Check the merchant's Authorization exactly as WeChat does; 401 SIGN_ERROR if not."""
        auth = crypto.parse_authorization(request.headers.get("authorization", ""))
        if auth is None:
            raise WechatError(401, "SIGN_ERROR", "Authorization 头缺失或格式错误")
        if auth.mchid != self.keys.mchid:
            raise WechatError(401, "SIGN_ERROR", "商户号不存在或与签名不匹配")
        if self.keys.merchant_serial_no and auth.serial_no != self.keys.merchant_serial_no:
            raise WechatError(401, "SIGN_ERROR", "商户证书序列号有误")
        if not auth.timestamp.isdigit() or abs(time.time() - int(auth.timestamp)) > CLOCK_SKEW_S:
            raise WechatError(401, "SIGN_ERROR", "timestamp与发起请求的时间不得超过5分钟")
        lines = [
            request.method.encode(),
            request_target(request).encode(),
            auth.timestamp.encode(),
            auth.nonce_str.encode(),
            body,
        ]
        if not crypto.check_sha256_rsa(self.keys.merchant_public_key, lines, auth.signature):
            raise WechatError(401, "SIGN_ERROR", "签名错误，请检查后再试")

    # Us → merchant ------------------------------------------------------------------------

    def signed(
        self,
        status: int,
        data: dict[str, Any] | None,
        *,
        forge: bool = False,
        serial: str | None = None,
    ) -> Response:
        """An answer with Wechatpay-* signature headers over its exact body."""
        body = json.dumps(data, ensure_ascii=False).encode() if data is not None else b""
        timestamp, nonce = str(int(time.time())), crypto.random_string(32)
        key = crypto.forger_key() if forge else self.keys.platform_key
        headers = {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": crypto.sign_sha256_rsa(
                key, [timestamp.encode(), nonce.encode(), body]
            ),
            "Wechatpay-Serial": serial or self.keys.signing_serial,
            "Wechatpay-Signature-Type": crypto.AUTH_SCHEME,
            "Request-ID": uuid.uuid4().hex,
        }
        media_type = "application/json" if data is not None else None
        return Response(body, status_code=status, headers=headers, media_type=media_type)

    def error(self, exc: WechatError) -> Response:
        return self.signed(exc.status, {"code": exc.code, "message": exc.message})

    # The payer and the callbacks ----------------------------------------------------------

    def pay(self, out_trade_no: str, succeeded: bool) -> Trade | None:
        """The payer confirms (or the payment fails). A success is notified; a failure is not,
        as WeChat only calls back for TRANSACTION.SUCCESS."""
        before = self.store.get(out_trade_no)
        was_open = before is not None and before.trade_state in ("NOTPAY", "PAYERROR")
        trade = self.store.pay(out_trade_no, succeeded)
        if trade is not None and was_open and trade.trade_state == "SUCCESS":
            self.notify_payment(trade)
        return trade

    def notify_payment(self, trade: Trade) -> None:
        faults = self.store.faults_for(trade.out_trade_no)
        resource = trade.transaction()
        if faults.tamper_amount:
            resource["amount"]["total"] += 1
            resource["amount"]["payer_total"] += 1
        if faults.wrong_mchid:
            resource["mchid"] = "1900000000"
        if faults.wrong_appid:
            resource["appid"] = "wx0000000000000000"
        notification_id, body = envelope(self.keys, "TRANSACTION.SUCCESS", "transaction", resource)
        self.notifier.submit(
            Delivery(
                notification_id,
                "TRANSACTION.SUCCESS",
                trade.out_trade_no,
                trade.notify_url,
                body,
                faults,
            )
        )

    def settle_refund_later(self, refund: Refund) -> None:
        timer = threading.Timer(
            REFUND_SETTLES_AFTER_S * self.time_scale, self._settle_refund, (refund.out_refund_no,)
        )
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _settle_refund(self, out_refund_no: str) -> None:
        refund = self.store.finish_refund(out_refund_no)
        if refund is None or refund.status != "SUCCESS" or not refund.notify_url:
            return
        resource = refund.resource(self.keys.mchid)
        callback = {k: v for k, v in resource.items() if k not in ("status", "channel")}
        callback["amount"] = {k: v for k, v in resource["amount"].items() if k != "currency"}
        notification_id, body = envelope(self.keys, "REFUND.SUCCESS", "refund", callback)
        self.notifier.submit(
            Delivery(
                notification_id,
                "REFUND.SUCCESS",
                refund.out_trade_no,
                refund.notify_url,
                body,
                self.store.faults_for(refund.out_trade_no),
            )
        )
