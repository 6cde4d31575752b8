"""Alipay wire ↔ knowpay DTOs: yuan strings ↔ Money, trade_status ↔ ChannelStatus, Beijing
times ↔ UTC, notification fields, and the `success` answer (PROTOCOLS.md 1.4-1.6)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import (
    ChannelStatus,
    Notification,
    NotificationAck,
    PaymentQueryResult,
    RefundResult,
)
from knowpay.kit.money import Money, MoneyError

CURRENCY = "CNY"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
"""Alipay's timestamps are Beijing time (no daylight saving since 1991)."""
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MIN_AMOUNT = Money(1, CURRENCY)
MAX_AMOUNT = Money(100_000_000_00, CURRENCY)

TRADE_STATUS: dict[str, ChannelStatus] = {
    "WAIT_BUYER_PAY": ChannelStatus.PENDING,
    "TRADE_SUCCESS": ChannelStatus.SUCCEEDED,
    "TRADE_FINISHED": ChannelStatus.SUCCEEDED,
    "TRADE_CLOSED": ChannelStatus.CLOSED,
}
"""TRADE_SUCCESS (refundable) and TRADE_FINISHED (no longer refundable) both mean paid;
TRADE_CLOSED is an unpaid trade closed, or a paid one fully refunded."""

_SUBJECT_RESERVED = str.maketrans({"/": "／", "=": "＝", "&": "＆"})
SUBJECT_MAX_CHARS = 256

ACK_SUCCESS = b"success"
ACK_FAILURE = b"failure"


def to_yuan(amount: Money) -> str:
    """Money → Alipay's yuan string with two decimals ("99.00"); CNY only, 0.01 … 1e8."""
    if amount.currency != CURRENCY:
        raise ProtocolError(f"Alipay charges CNY only, not {amount.currency}")
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise ProtocolError(f"{amount} is outside Alipay's range 0.01 … 100000000.00")
    return amount.to_decimal_string()


def from_yuan(text: str | None, field: str = "total_amount") -> Money:
    """Alipay's yuan string → Money, exactly (no float); ProtocolError when malformed."""
    if text is None:
        raise ProtocolError(f"{field} is missing")
    try:
        return Money.parse(text, CURRENCY)
    except MoneyError as exc:
        raise ProtocolError(f"{field} {text!r} is not an amount in yuan: {exc}") from exc


def subject(text: str) -> str:
    """An order subject as Alipay accepts it: at most 256 characters and none of `/ = &`
    (its documentation forbids them), which become their full-width forms."""
    cleaned = " ".join(text.translate(_SUBJECT_RESERVED).split())
    return cleaned[:SUBJECT_MAX_CHARS] or "-"


def beijing_time(moment: datetime) -> str:
    """A UTC moment as Alipay writes it: `yyyy-MM-dd HH:mm:ss` in Beijing time."""
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def timeout_express(expires_at: datetime, now: datetime) -> str:
    """The time left to pay as Alipay's relative `timeout_express` ("90m"; 1m to 15d): the
    precreate (QR) API is documented with it, where page and wap pay take `time_expire`."""
    minutes = math.ceil((expires_at - now).total_seconds() / 60)
    return f"{min(max(minutes, 1), 15 * 24 * 60)}m"


def parse_beijing_time(text: str | None) -> datetime | None:
    """Alipay's Beijing `yyyy-MM-dd HH:mm:ss` → an aware UTC datetime (None when absent)."""
    if not text:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # Overflow: 0001-01-01 00:00 Beijing is year 0 UTC
        raise ProtocolError(f"not an Alipay time: {text!r}") from exc


def trade_status(text: str | None) -> ChannelStatus:
    """An unknown or missing trade_status means pending: only explicit outcomes are final."""
    return TRADE_STATUS.get(text or "", ChannelStatus.PENDING)


def query_result(content: Mapping[str, Any]) -> PaymentQueryResult:
    """A successful alipay.trade.query answer."""
    status = trade_status(_text(content, "trade_status"))
    amount = from_yuan(_text(content, "total_amount")) if "total_amount" in content else None
    if status is ChannelStatus.SUCCEEDED and amount is None:
        raise ProtocolError("a paid trade without total_amount")
    return PaymentQueryResult(
        status=status,
        gateway_trade_no=_text(content, "trade_no"),
        amount=amount,
        paid_at=parse_beijing_time(_text(content, "send_pay_date"))
        if status is ChannelStatus.SUCCEEDED
        else None,
    )


def refund_query_result(
    content: Mapping[str, Any], gateway_trade_no: str | None, amount: Money | None = None
) -> RefundResult:
    """A successful alipay.trade.fastpay.refund.query answer: `code=10000` alone is not a
    refund; the refund exists when the answer carries `refund_amount`. One of another trade,
    or (when the refund's amount is known) of another amount, is not this refund's:
    ProtocolError."""
    check_refund_trade(content, gateway_trade_no)
    refund_status = _text(content, "refund_status")
    refunded = _text(content, "refund_amount")
    if refunded is None or refund_status not in (None, "REFUND_SUCCESS"):
        return RefundResult(status=ChannelStatus.PENDING)
    if amount is not None and from_yuan(refunded, "refund_amount") != amount:
        raise ProtocolError(f"the refund query says {refunded} yuan were refunded, not {amount}")
    return RefundResult(
        status=ChannelStatus.SUCCEEDED, gateway_refund_no=_text(content, "trade_no")
    )


def check_refund_trade(content: Mapping[str, Any], gateway_trade_no: str | None) -> None:
    """A refund answer names Alipay's trade number, which stands for the refund's own
    (`gateway_refund_no`): once knowpay knows the payment's, another is not this refund's."""
    named = _text(content, "trade_no")
    if gateway_trade_no is not None and named is not None and named != gateway_trade_no:
        raise ProtocolError(f"the refund answer names trade {named}, not {gateway_trade_no}")


def notification(params: Mapping[str, str]) -> Notification:
    """A verified `trade_status_sync` form, reduced to what the core needs.

    A form with a refund (`out_biz_no`, `refund_fee`, `gmt_refund`) is a refund notification:
    partial refunds keep TRADE_SUCCESS and a full one ends in TRADE_CLOSED, so its status says
    nothing about the payment. Its amount is left out: Alipay reports the cumulative refund."""
    notify_id = params.get("notify_id")
    out_trade_no = params.get("out_trade_no")
    if not notify_id or not out_trade_no:
        raise ProtocolError("a notification without notify_id or out_trade_no")
    if params.get("notify_type", "trade_status_sync") != "trade_status_sync":
        raise ProtocolError(f"unexpected notify_type {params.get('notify_type')!r}")
    if _is_refund(params):
        return Notification(
            kind="refund",
            external_id=notify_id,
            out_trade_no=out_trade_no,
            status=ChannelStatus.SUCCEEDED,
            gateway_trade_no=params.get("trade_no"),
            merchant_id=params.get("seller_id"),
            out_refund_no=params.get("out_biz_no"),
            # Alipay numbers no refund; like RefundResult's, the trade number stands in.
            gateway_refund_no=params.get("trade_no"),
            trade_amount=from_yuan(params["total_amount"]) if "total_amount" in params else None,
        )
    status = trade_status(params.get("trade_status"))
    return Notification(
        kind="payment",
        external_id=notify_id,
        out_trade_no=out_trade_no,
        status=status,
        gateway_trade_no=params.get("trade_no"),
        amount=from_yuan(params.get("total_amount")),
        merchant_id=params.get("seller_id"),
        payer_account=params.get("buyer_open_id") or params.get("buyer_id") or None,
        paid_at=parse_beijing_time(params.get("gmt_payment"))
        if status is ChannelStatus.SUCCEEDED
        else None,
    )


def _is_refund(params: Mapping[str, str]) -> bool:
    if params.get("out_biz_no") or params.get("gmt_refund"):
        return True
    refund_fee = params.get("refund_fee")
    return bool(refund_fee) and from_yuan(refund_fee, "refund_fee").amount_minor > 0


def ack(accepted: bool) -> NotificationAck:
    """Alipay stops retrying only on a body of exactly `success`."""
    return NotificationAck(200, ACK_SUCCESS if accepted else ACK_FAILURE, "text/plain")


def _text(content: Mapping[str, Any], key: str) -> str | None:
    value = content.get(key)
    if value is None or value == "":
        return None
    return str(value)
