"""The simulator's own book of trades, refunds and injected faults: in memory, thread-safe."""

from __future__ import annotations

import secrets
import threading
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

BEIJING = timezone(timedelta(hours=8))
TRADE_TYPES = {"native": "NATIVE", "jsapi": "JSAPI", "h5": "MWEB"}


def now_utc() -> datetime:
    return datetime.now(UTC)


def beijing(moment: datetime) -> str:
    """RFC 3339 in Beijing time, as WeChat writes times."""
    return moment.astimezone(BEIJING).isoformat(timespec="seconds")


@dataclass
class Trade:
    out_trade_no: str
    trade_type: str
    appid: str
    mchid: str
    description: str
    notify_url: str
    total: int
    currency: str
    expires_at: datetime | None
    prepay_id: str
    code_token: str
    payer_openid: str | None = None
    payer_client_ip: str | None = None
    attach: str | None = None
    trade_state: str = "NOTPAY"
    trade_state_desc: str = "订单未支付"
    transaction_id: str | None = None
    success_time: datetime | None = None
    refunded: int = 0
    created_at: datetime = field(default_factory=now_utc)

    def transaction(self) -> dict[str, Any]:
        """The trade as the query API shows it (a `Transaction`)."""
        data: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": self.out_trade_no,
            "trade_type": self.trade_type,
            "trade_state": self.trade_state,
            "trade_state_desc": self.trade_state_desc,
            "attach": self.attach or "",
            "amount": {"total": self.total, "currency": self.currency},
        }
        if self.transaction_id:
            data["transaction_id"] = self.transaction_id
            data["bank_type"] = "OTHERS"
            data["payer"] = {"openid": self.payer_openid or ""}
            data["amount"].update({"payer_total": self.total, "payer_currency": self.currency})
        if self.success_time:
            data["success_time"] = beijing(self.success_time)
        return data


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    currency: str
    reason: str
    notify_url: str | None
    status: str = "PROCESSING"
    created_at: datetime = field(default_factory=now_utc)
    success_time: datetime | None = None

    def resource(self, mchid: str) -> dict[str, Any]:
        """The refund as the refund API and the refund callback show it."""
        data: dict[str, Any] = {
            "mchid": mchid,
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": beijing(self.created_at),
            "status": self.status,
            "refund_status": self.status,
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
                "currency": self.currency,
            },
        }
        if self.success_time:
            data["success_time"] = beijing(self.success_time)
        return data


@dataclass
class Faults:
    """What to do wrong, for one trade or for all (see docs/gateways/wechatpay.md)."""

    lose_notification: bool = False
    duplicate: int = 1
    delay_s: float = 0.0
    out_of_order: bool = False
    api_status: int | None = None
    api_code: str | None = None
    api_delay_s: float = 0.0
    tamper_amount: bool = False
    forge_signature: bool = False
    forge_response: bool = False
    stale_timestamp: bool = False
    wrong_mchid: bool = False
    wrong_appid: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        faults = cls(**data)
        faults.duplicate = max(1, min(int(faults.duplicate), 50))
        return faults

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _digits(count: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


class Store:
    """Trades by out_trade_no, refunds by out_refund_no, faults by out_trade_no (None: all)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.trades: dict[str, Trade] = {}
        self.refunds: dict[str, Refund] = {}
        self.faults: dict[str | None, Faults] = {}

    def faults_for(self, out_trade_no: str | None) -> Faults:
        with self.lock:
            if out_trade_no is not None and out_trade_no in self.faults:
                return self.faults[out_trade_no]
            return self.faults.get(None) or Faults()

    def get(self, out_trade_no: str) -> Trade | None:
        with self.lock:
            trade = self.trades.get(out_trade_no)
            if trade is not None:
                self._expire(trade)
            return trade

    def _expire(self, trade: Trade) -> None:
        if trade.trade_state == "NOTPAY" and trade.expires_at and trade.expires_at < now_utc():
            trade.trade_state, trade.trade_state_desc = "CLOSED", "订单已关闭(超时)"

    def by_prepay(self, prepay_id: str) -> Trade | None:
        with self.lock:
            found = next((t for t in self.trades.values() if t.prepay_id == prepay_id), None)
            return self.get(found.out_trade_no) if found else None

    def by_code(self, code_token: str) -> Trade | None:
        with self.lock:
            found = next((t for t in self.trades.values() if t.code_token == code_token), None)
            return self.get(found.out_trade_no) if found else None

    def by_transaction(self, transaction_id: str) -> Trade | None:
        with self.lock:
            found = next(
                (t for t in self.trades.values() if t.transaction_id == transaction_id), None
            )
            return self.get(found.out_trade_no) if found else None

    def open_trade(self, trade: Trade) -> Trade:
        with self.lock:
            self.trades[trade.out_trade_no] = trade
            return trade

    @staticmethod
    def new_prepay_id() -> str:
        return "wx" + now_utc().astimezone(BEIJING).strftime("%d%H%M%S") + secrets.token_hex(14)

    def pay(self, out_trade_no: str, succeeded: bool) -> Trade | None:
        """The payer pays (or the payment fails); only an unpaid, open trade changes."""
        with self.lock:
            trade = self.get(out_trade_no)
            if trade is None or trade.trade_state not in ("NOTPAY", "PAYERROR"):
                return trade
            if succeeded:
                trade.trade_state, trade.trade_state_desc = "SUCCESS", "支付成功"
                trade.transaction_id = "42000" + _digits(23)
                trade.success_time = now_utc()
                trade.payer_openid = trade.payer_openid or "o" + secrets.token_urlsafe(20)[:27]
            else:
                trade.trade_state, trade.trade_state_desc = "PAYERROR", "支付失败，请重新下单支付"
            return trade

    def close(self, out_trade_no: str) -> Trade | None:
        with self.lock:
            trade = self.get(out_trade_no)
            if trade is not None and trade.trade_state in ("NOTPAY", "PAYERROR"):
                trade.trade_state, trade.trade_state_desc = "CLOSED", "订单已关闭"
            return trade

    def add_refund(self, trade: Trade, fields_: dict[str, Any]) -> tuple[Refund, bool] | str:
        """A new refund of a paid trade (and True), or the existing one with that out_refund_no
        (and False); an error code when refused."""
        with self.lock:
            existing = self.refunds.get(fields_["out_refund_no"])
            if existing is not None:
                return existing, False
            if trade.trade_state not in ("SUCCESS", "REFUND") or trade.transaction_id is None:
                return "TRADE_NOT_PAID"
            if fields_["total"] != trade.total:
                return "TOTAL_MISMATCH"
            if fields_["refund"] <= 0 or trade.refunded + fields_["refund"] > trade.total:
                return "REFUND_EXCEEDS"
            trade.refunded += fields_["refund"]
            trade.trade_state, trade.trade_state_desc = "REFUND", "转入退款"
            refund = Refund(
                refund_id="50" + _digits(27),
                transaction_id=trade.transaction_id,
                out_trade_no=trade.out_trade_no,
                currency=trade.currency,
                **fields_,
            )
            self.refunds[refund.out_refund_no] = refund
            return refund, True

    def finish_refund(self, out_refund_no: str) -> Refund | None:
        with self.lock:
            refund = self.refunds.get(out_refund_no)
            if refund is not None and refund.status == "PROCESSING":
                refund.status, refund.success_time = "SUCCESS", now_utc()
            return refund

    def paid_or_refunded_on(
        self, start: datetime, end: datetime
    ) -> tuple[list[Trade], list[Refund]]:
        with self.lock:
            trades = [
                t
                for t in self.trades.values()
                if t.success_time is not None and start <= t.success_time < end
            ]
            refunds = [
                r
                for r in self.refunds.values()
                if r.success_time is not None and start <= r.success_time < end
            ]
            return trades, refunds
