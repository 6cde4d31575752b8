"""The simulated gateway's own trade records: in memory, one lock, Alipay's state rules.

A precreated (QR) trade is invisible until scanned, as at Alipay: query and close answer
ACQ.TRADE_NOT_EXIST until then. A page/wap trade exists once the buyer opens the cashier."""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
PRECREATED = "PRECREATED"  # the simulator's own: not a trade yet (not scanned)
WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_FINISHED = "TRADE_FINISHED"
TRADE_CLOSED = "TRADE_CLOSED"
Kind = Literal["page", "wap", "qr"]


class TradeError(Exception):
    """A business refusal: Alipay's 40004 with a sub_code."""

    def __init__(self, sub_code: str, sub_msg: str) -> None:
        super().__init__(f"{sub_code}: {sub_msg}")
        self.sub_code = sub_code
        self.sub_msg = sub_msg


def now_beijing() -> datetime:
    return datetime.now(BEIJING).replace(microsecond=0)


@dataclass
class Refund:
    out_request_no: str
    amount: Decimal
    reason: str
    refunded_at: datetime


@dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    kind: Kind
    subject: str
    total_amount: Decimal
    notify_url: str | None
    return_url: str | None
    created_at: datetime
    status: str
    time_expire: datetime | None = None
    qr_token: str | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    buyer_id: str = "2088102177846875"
    buyer_logon_id: str = "buy***@sandbox.com"
    refunds: dict[str, Refund] = field(default_factory=dict)

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds.values()), Decimal("0.00"))

    @property
    def visible(self) -> bool:
        return self.status != PRECREATED


class TradeBook:
    """All trades of the simulated merchant, safe to use from many threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._trades: dict[str, Trade] = {}
        self._by_token: dict[str, str] = {}
        self._by_trade_no: dict[str, str] = {}
        self._serial = itertools.count(1)

    def _trade_no(self) -> str:
        return f"{now_beijing():%Y%m%d}2200{next(self._serial):06d}{secrets.randbelow(10**10):010d}"

    def open(
        self,
        *,
        kind: Kind,
        out_trade_no: str,
        subject: str,
        total_amount: Decimal,
        notify_url: str | None,
        return_url: str | None,
        time_expire: datetime | None,
    ) -> Trade:
        """Create the trade (page/wap: waiting for the buyer; qr: precreated), or return the
        one already opened with the same terms."""
        with self._lock:
            trade = self._trades.get(out_trade_no)
            if trade is not None:
                if trade.total_amount != total_amount or trade.subject != subject:
                    raise TradeError("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
                if trade.status in (TRADE_SUCCESS, TRADE_FINISHED):
                    raise TradeError("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
                if trade.status == TRADE_CLOSED:
                    raise TradeError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
                return trade
            trade = Trade(
                out_trade_no=out_trade_no,
                trade_no=self._trade_no(),
                kind=kind,
                subject=subject,
                total_amount=total_amount,
                notify_url=notify_url,
                return_url=return_url,
                created_at=now_beijing(),
                status=PRECREATED if kind == "qr" else WAIT_BUYER_PAY,
                time_expire=time_expire,
            )
            if kind == "qr":
                trade.qr_token = secrets.token_urlsafe(12)
                self._by_token[trade.qr_token] = out_trade_no
            self._trades[out_trade_no] = trade
            self._by_trade_no[trade.trade_no] = out_trade_no
            return trade

    def get(self, out_trade_no: str | None = None, trade_no: str | None = None) -> Trade | None:
        """A trade the gateway would admit to (a precreated one is not one yet)."""
        with self._lock:
            trade = self.get_any(out_trade_no, trade_no)
            return trade if trade is not None and trade.visible else None

    def get_any(self, out_trade_no: str | None = None, trade_no: str | None = None) -> Trade | None:
        with self._lock:
            if out_trade_no is None and trade_no is not None:
                out_trade_no = self._by_trade_no.get(trade_no)
            return self._trades.get(out_trade_no or "")

    def scan(self, token: str) -> Trade | None:
        """The buyer scans a QR code: the precreated trade becomes a real one."""
        with self._lock:
            trade = self._trades.get(self._by_token.get(token, ""))
            if trade is not None and trade.status == PRECREATED:
                trade.status = WAIT_BUYER_PAY
                trade.created_at = now_beijing()
            return trade

    def pay(self, trade: Trade) -> bool:
        """The buyer pays a waiting trade; False when it cannot be paid (closed, expired …)."""
        with self._lock:
            now = now_beijing()
            if trade.status == WAIT_BUYER_PAY and trade.time_expire and now > trade.time_expire:
                self._close(trade, now)
            if trade.status != WAIT_BUYER_PAY:
                return False
            trade.status = TRADE_SUCCESS
            trade.paid_at = now
            return True

    def close(self, trade: Trade) -> None:
        """alipay.trade.close: only a trade waiting for the buyer."""
        with self._lock:
            if trade.status != WAIT_BUYER_PAY:
                raise TradeError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            self._close(trade, now_beijing())

    @staticmethod
    def _close(trade: Trade, now: datetime) -> None:
        trade.status = TRADE_CLOSED
        trade.closed_at = now

    def finish(self, trade: Trade) -> bool:
        """The refund window ends: TRADE_SUCCESS becomes TRADE_FINISHED."""
        with self._lock:
            if trade.status != TRADE_SUCCESS:
                return False
            trade.status = TRADE_FINISHED
            return True

    def refund(
        self, trade: Trade, out_request_no: str, amount: Decimal, reason: str
    ) -> tuple[Refund, bool]:
        """Refund once per out_request_no; (the refund, whether money moved in this call)."""
        with self._lock:
            existing = trade.refunds.get(out_request_no)
            if existing is not None:
                if existing.amount != amount:
                    raise TradeError("ACQ.REQUEST_AMOUNT_EXCEED", "同一退款请求号的退款金额不一致")
                return existing, False
            if trade.status == TRADE_FINISHED:
                raise TradeError("ACQ.TRADE_HAS_FINISHED", "交易已完结")
            if trade.status != TRADE_SUCCESS:
                raise TradeError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            if trade.refunded + amount > trade.total_amount:
                raise TradeError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
            refund = Refund(out_request_no, amount, reason, now_beijing())
            trade.refunds[out_request_no] = refund
            if trade.refunded == trade.total_amount:
                self._close(trade, refund.refunded_at)
            return refund, True

    def on_day(self, day: date) -> list[Trade]:
        """Trades paid or refunded on a Beijing calendar day (for the bill)."""
        with self._lock:
            return [
                t
                for t in self._trades.values()
                if (t.paid_at and t.paid_at.date() == day)
                or any(r.refunded_at.date() == day for r in t.refunds.values())
            ]
