"""The simulated Alipay: its app and keys, trade book, faults and notifications, and the
server-side API methods of gateway.do."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from knowpay.sandbox.alipay import bills, crypto
from knowpay.sandbox.alipay import gateway as gw
from knowpay.sandbox.alipay.book import (
    TRADE_CLOSED,
    TRADE_SUCCESS,
    WAIT_BUYER_PAY,
    Refund,
    Trade,
    TradeBook,
    TradeError,
    now_beijing,
)
from knowpay.sandbox.alipay.faults import API_FAULTS, NOTIFICATION_FAULTS, FaultBook
from knowpay.sandbox.alipay.notifier import Notifier

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

DEFAULT_APP_ID = "2021000000000001"
DEFAULT_SELLER_ID = "2088621000000001"
BILL_URL_TTL_S = 30.0
"""Alipay's bill_download_url is valid for 30 seconds."""


def _merchant(section: Mapping[str, str]) -> tuple[gw.Merchant, dict[str, str]]:
    """The merchant and gateway keys: from the config, or freshly generated."""
    published: dict[str, str] = {}
    if section.get("gateway_private_key"):
        gateway_key = crypto.load_private(section["gateway_private_key"])
    else:
        gateway_key = crypto.generate_key()
    if section.get("merchant_public_key"):
        merchant_public = crypto.load_public(section["merchant_public_key"])
    else:
        merchant_key = crypto.generate_key()
        merchant_public = merchant_key.public_key()
        # Sandbox only: like Alipay's sandbox console, hand the generated app key to the demo.
        published["merchant_private_key"] = crypto.private_pem(merchant_key)
    merchant = gw.Merchant(
        app_id=section.get("app_id") or DEFAULT_APP_ID,
        seller_id=section.get("seller_id") or DEFAULT_SELLER_ID,
        merchant_public_key=merchant_public,
        gateway_private_key=gateway_key,
    )
    published["merchant_public_key"] = crypto.public_pem(merchant_public)
    published["alipay_public_key"] = crypto.public_pem(gateway_key.public_key())
    return merchant, published


class AlipaySimulator:
    def __init__(self, config: SandboxConfig) -> None:
        self.base_url = config.public_url.rstrip("/") + "/alipay"
        self.merchant, self._published = _merchant(config.gateways.get("alipay", {}))
        self.book = TradeBook()
        self.faults = FaultBook()
        self.notifier = Notifier(config.time_scale)
        self._bill_urls: dict[str, tuple[date, float]] = {}
        self._bill_lock = threading.Lock()
        self._forger: rsa.RSAPrivateKey | None = None
        self._methods: dict[str, Callable[[dict[str, Any], Mapping[str, str]], dict[str, Any]]] = {
            "alipay.trade.precreate": self._precreate,
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
            "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
        }

    def keys(self) -> dict[str, str]:
        return {
            "app_id": self.merchant.app_id,
            "seller_id": self.merchant.seller_id,
            "gateway_url": f"{self.base_url}/gateway.do",
            **self._published,
        }

    # gateway.do ---------------------------------------------------------------------------

    def api_faults(self, params: Mapping[str, str]) -> tuple[int | None, float]:
        """(an HTTP status to fail with, seconds to stall) for this call."""
        out_trade_no = _biz_field(params, "out_trade_no")
        status, stall = None, 0.0
        # One fault per call, in the order they were added: a 5xx then a timeout are two calls.
        for fault in self.faults.take(API_FAULTS, out_trade_no, params.get("method"), limit=1):
            if fault.kind == "http_5xx":
                status = fault.status
            else:
                stall = max(stall, fault.seconds)
        return status, stall

    def call(self, params: Mapping[str, str]) -> str:
        """A server-side API call: the JSON body Alipay would answer."""
        method = params.get("method")
        try:
            method, biz = gw.check_request(params, self.merchant)
            handler = self._methods.get(method)
            if handler is None:
                raise gw.invalid("isv.invalid-method", "不存在的方法名")
            content = handler(biz, params)
        except gw.GatewayError as error:
            return gw.error_answer(method, error, self.merchant)
        except TradeError as error:
            return gw.error_answer(
                method, gw.business_error(error.sub_code, error.sub_msg), self.merchant
            )
        return gw.answer(method, {**gw.SUCCESS, **content}, self.merchant, signed=True)

    def open_cashier(self, params: Mapping[str, str]) -> Trade:
        """alipay.trade.page.pay / wap.pay in the buyer's browser: the trade opens."""
        method, biz = gw.check_request(params, self.merchant)
        codes = {
            "alipay.trade.page.pay": ("FAST_INSTANT_TRADE_PAY",),
            "alipay.trade.wap.pay": ("QUICK_WAP_WAY", "QUICK_WAP_PAY"),
        }.get(method)
        if codes is None:
            raise gw.invalid("isv.invalid-method", "不存在的方法名")
        if biz.get("product_code") not in codes:
            raise gw.invalid("isv.invalid-parameter", "参数 product_code 不合法")
        return self.book.open(
            kind="page" if method.endswith("page.pay") else "wap",
            out_trade_no=gw.required(biz, "out_trade_no"),
            subject=gw.required(biz, "subject"),
            total_amount=gw.amount(biz, "total_amount"),
            notify_url=params.get("notify_url"),
            return_url=params.get("return_url"),
            time_expire=gw.expiry(biz),
        )

    def _trade(self, biz: Mapping[str, Any]) -> Trade:
        if not biz.get("out_trade_no") and not biz.get("trade_no"):
            raise gw.missing("isv.missing-parameter", "缺少必选参数 out_trade_no 或 trade_no")
        trade = self.book.get(biz.get("out_trade_no"), biz.get("trade_no"))
        if trade is None:
            raise TradeError("ACQ.TRADE_NOT_EXIST", "交易不存在")
        return trade

    def _precreate(self, biz: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        trade = self.book.open(
            kind="qr",
            out_trade_no=gw.required(biz, "out_trade_no"),
            subject=gw.required(biz, "subject"),
            total_amount=gw.amount(biz, "total_amount"),
            notify_url=params.get("notify_url"),
            return_url=None,
            time_expire=gw.expiry(biz),
        )
        if trade.qr_token is None:
            raise TradeError("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
        return {
            "out_trade_no": trade.out_trade_no,
            "qr_code": f"{self.base_url}/qr/{trade.qr_token}",
        }

    def _query(self, biz: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        trade = self._trade(biz)
        content: dict[str, Any] = {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": trade.buyer_logon_id,
            "trade_status": trade.status,
            "total_amount": gw.yuan(trade.total_amount),
        }
        if trade.paid_at is not None:
            paid = gw.yuan(trade.total_amount)
            content.update(
                buyer_pay_amount=paid, receipt_amount=paid, invoice_amount=paid,
                point_amount="0.00", send_pay_date=gw.beijing(trade.paid_at),
                buyer_user_id=trade.buyer_id,
                fund_bill_list=[{"amount": paid, "fund_channel": "ALIPAYACCOUNT"}],
            )  # fmt: skip
        return content

    def _close(self, biz: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        trade = self._trade(biz)
        self.book.close(trade)
        self.notify(trade)
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}

    def _refund(self, biz: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        trade = self._trade(biz)
        amount = gw.amount(biz, "refund_amount")
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        refund, moved = self.book.refund(
            trade, request_no, amount, str(biz.get("refund_reason", ""))
        )
        if moved:
            self.notify(trade, refund)
        return {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": trade.buyer_logon_id,
            "fund_change": "Y" if moved else "N",
            "refund_fee": gw.yuan(trade.refunded),
            "gmt_refund_pay": gw.beijing(refund.refunded_at),
            "buyer_user_id": trade.buyer_id,
            "send_back_fee": gw.yuan(refund.amount),
        }

    def _refund_query(self, biz: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        trade = self._trade(biz)
        request_no = gw.required(biz, "out_request_no")
        refund = trade.refunds.get(request_no)
        if refund is None:
            # code 10000 with no refund in it: Alipay's way of saying "no such refund".
            return {"out_request_no": request_no}
        content: dict[str, Any] = {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_request_no": request_no,
            "total_amount": gw.yuan(trade.total_amount),
            "refund_amount": gw.yuan(refund.amount),
            "refund_status": "REFUND_SUCCESS",
        }
        if "gmt_refund_pay" in (biz.get("query_options") or []):
            content["gmt_refund_pay"] = gw.beijing(refund.refunded_at)
        return content

    def _bill_url(self, biz: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        if biz.get("bill_type") != "trade":
            raise gw.invalid("isv.invalid-parameter", "参数 bill_type 不合法")
        try:
            day = date.fromisoformat(str(biz.get("bill_date", "")))
        except ValueError:
            raise gw.invalid("isv.invalid-parameter", "参数 bill_date 不合法") from None
        if day > now_beijing().date():
            raise TradeError("isp.bill_not_exist", "账单不存在")
        token = secrets.token_urlsafe(16)
        with self._bill_lock:
            self._bill_urls[token] = (day, time.monotonic() + BILL_URL_TTL_S)
        return {"bill_download_url": f"{self.base_url}/bills/download?token={token}"}

    def bill_file(self, token: str) -> tuple[str, bytes] | None:
        """The zipped bill a download URL names, while the URL is valid."""
        with self._bill_lock:
            entry = self._bill_urls.get(token)
        if entry is None or entry[1] < time.monotonic():
            return None
        day = entry[0]
        return bills.build(self.merchant.seller_id, day, self.book.on_day(day), now_beijing())

    # The buyer's side ---------------------------------------------------------------------

    def pay(self, trade: Trade) -> bool:
        """The buyer pays: the trade succeeds and the notification goes out."""
        was_waiting = trade.status == WAIT_BUYER_PAY
        paid = self.book.pay(trade)
        if paid or (was_waiting and trade.status == TRADE_CLOSED):
            self.notify(trade)  # paid, or closed just now because it had expired
        return paid

    def return_url(self, trade: Trade) -> str | None:
        """Where the buyer's browser goes after paying: return_url with signed parameters."""
        if not trade.return_url:
            return None
        params = {
            "charset": "utf-8",
            "out_trade_no": trade.out_trade_no,
            "method": f"alipay.trade.{trade.kind}.pay.return",
            "total_amount": gw.yuan(trade.total_amount),
            "trade_no": trade.trade_no,
            "auth_app_id": self.merchant.app_id,
            "version": "1.0",
            "app_id": self.merchant.app_id,
            "seller_id": self.merchant.seller_id,
            "timestamp": gw.beijing(now_beijing()),
            "sign_type": "RSA2",
        }
        params["sign"] = crypto.sign(
            crypto.notify_content(params), self.merchant.gateway_private_key
        )
        separator = "&" if "?" in trade.return_url else "?"
        return f"{trade.return_url}{separator}{urlencode(params)}"

    # Notifications ------------------------------------------------------------------------

    def notify(self, trade: Trade, refund: Refund | None = None) -> None:
        """Send trade_status_sync for the trade's current state, faults applied."""
        if not trade.notify_url:
            return
        params = self._notice(trade, refund)
        faults = self.faults.take(NOTIFICATION_FAULTS, trade.out_trade_no)
        kinds = {fault.kind: fault for fault in faults}
        if "tampered_amount" in kinds:
            tampered = kinds["tampered_amount"].amount
            for name in ("total_amount", "receipt_amount", "buyer_pay_amount", "invoice_amount"):
                params[name] = tampered
        if "tampered_fields" in kinds:
            params.update(kinds["tampered_fields"].fields)
        key = (
            self._forged_key() if "forged_signature" in kinds else self.merchant.gateway_private_key
        )
        params["sign"] = crypto.sign(crypto.notify_content(params), key)
        self.notifier.submit(
            trade.notify_url,
            params,
            copies=kinds["duplicate"].count if "duplicate" in kinds else 1,
            first_delay_s=kinds["delayed"].delay_s if "delayed" in kinds else 0.0,
            lost="lost" in kinds,
            hold_s=kinds["out_of_order"].delay_s if "out_of_order" in kinds else None,
        )

    def _forged_key(self) -> rsa.RSAPrivateKey:
        if self._forger is None:
            self._forger = crypto.generate_key()
        return self._forger

    def _notice(self, trade: Trade, refund: Refund | None) -> dict[str, str]:
        now = now_beijing()
        params = {
            "notify_time": gw.beijing(now),
            "notify_type": "trade_status_sync",
            "notify_id": uuid.uuid4().hex + secrets.token_hex(2),
            "app_id": self.merchant.app_id,
            "auth_app_id": self.merchant.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_id": trade.buyer_id,
            "buyer_logon_id": trade.buyer_logon_id,
            "seller_id": self.merchant.seller_id,
            "seller_email": "merchant@sandbox.example",
            "trade_status": trade.status,
            "total_amount": gw.yuan(trade.total_amount),
            "subject": trade.subject,
            "gmt_create": gw.beijing(trade.created_at),
        }
        if trade.paid_at is not None:
            paid = gw.yuan(trade.total_amount)
            params.update(
                receipt_amount=paid, invoice_amount=paid, buyer_pay_amount=paid,
                point_amount="0.00", gmt_payment=gw.beijing(trade.paid_at),
                fund_bill_list=f'[{{"amount":"{paid}","fundChannel":"ALIPAYACCOUNT"}}]',
            )  # fmt: skip
        if trade.closed_at is not None and trade.status == TRADE_CLOSED:
            params["gmt_close"] = gw.beijing(trade.closed_at)
        if refund is not None:
            params.update(
                out_biz_no=refund.out_request_no, refund_fee=gw.yuan(trade.refunded),
                gmt_refund=gw.beijing(refund.refunded_at) + ".000",
            )  # fmt: skip
        return params

    def finish(self, trade: Trade) -> bool:
        """The refund window ends (TRADE_FINISHED), notified like Alipay does."""
        if trade.status != TRADE_SUCCESS or not self.book.finish(trade):
            return False
        self.notify(trade)
        return True


def _biz_field(params: Mapping[str, str], name: str) -> str | None:
    try:
        biz = json.loads(params.get("biz_content") or "{}")
    except json.JSONDecodeError:
        return None
    value = biz.get(name) if isinstance(biz, dict) else None
    return str(value) if value else None
