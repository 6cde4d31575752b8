"""WeChat Pay v3 wire ↔ knowpay DTOs: request bodies, fen ↔ Money, trade and refund states,
error codes, callbacks and the answer WeChat expects (PROTOCOLS.md §2)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Literal

from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import (
    ChannelStatus,
    CreatePaymentRequest,
    Notification,
    NotificationAck,
    PaymentQueryResult,
    RefundRequest,
    RefundResult,
)
from knowpay.kit.jsontext import NotJson, parse_json
from knowpay.kit.money import Money, MoneyError

CURRENCY = "CNY"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TradeType = Literal["native", "jsapi", "h5"]

TRADE_STATES: dict[str, ChannelStatus] = {
    "SUCCESS": ChannelStatus.SUCCEEDED,
    "REFUND": ChannelStatus.SUCCEEDED,  # 转入退款: it was paid, then (part) refunded
    "NOTPAY": ChannelStatus.PENDING,
    "USERPAYING": ChannelStatus.PENDING,
    "CLOSED": ChannelStatus.CLOSED,
    "REVOKED": ChannelStatus.CLOSED,
    "PAYERROR": ChannelStatus.FAILED,
}
REFUND_STATES: dict[str, ChannelStatus] = {
    "SUCCESS": ChannelStatus.SUCCEEDED,
    "PROCESSING": ChannelStatus.PENDING,
    "ABNORMAL": ChannelStatus.PENDING,  # stuck (payer's card gone): handled by hand, not final
    "CLOSED": ChannelStatus.FAILED,
}


def trade_status(trade_state: str) -> ChannelStatus:
    """A trade_state as knowpay means it; an unknown one is pending."""
    return TRADE_STATES.get(trade_state, ChannelStatus.PENDING)


def refund_status(state: str) -> ChannelStatus:
    return REFUND_STATES.get(state, ChannelStatus.PENDING)


# Units and times -----------------------------------------------------------------------------


def to_fen(amount: Money) -> int:
    if amount.currency != CURRENCY:
        raise ProtocolError(f"WeChat Pay charges CNY only, not {amount.currency}")
    return amount.amount_minor


def money_of(amount: Any, field: str = "total") -> Money:
    """`amount.<field>` (integer fen) and `amount.currency` as Money."""
    if not isinstance(amount, dict):
        raise ProtocolError("the amount object is missing")
    fen = amount.get(field)
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise ProtocolError(f"amount.{field} is not an integer count of fen: {fen!r}")
    try:
        return Money(fen, str(amount.get("currency") or CURRENCY))
    except MoneyError as exc:
        raise ProtocolError(f"bad amount: {exc}") from exc


def rfc3339(moment: datetime) -> str:
    """WeChat's time format: Beijing time with its offset (2026-01-01T20:00:00+08:00)."""
    return moment.astimezone(BEIJING).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ProtocolError(f"not an RFC 3339 time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=BEIJING)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # the first or last day of year 1 or 9999, offset out of range
        raise ProtocolError(f"not a time knowpay can hold: {value!r}") from exc


def dumps(body: dict[str, Any]) -> bytes:
    """The exact JSON bytes that are sent and signed."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def loads_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = parse_json(raw)
    except NotJson as exc:
        raise ProtocolError(f"{what} is not JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return data


# Requests ------------------------------------------------------------------------------------

# WeChat Pay counts these limits in UTF-8 bytes (the refund API says so for `reason`); a
# Chinese character is 3 of them, so 127 characters of a course title would be refused.
DESCRIPTION_BYTES = 127
REASON_BYTES = 80


def utf8_prefix(text: str, limit: int) -> str:
    """The longest start of `text` that is at most `limit` bytes in UTF-8, whole characters."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def prepay_body(
    trade_type: TradeType, request: CreatePaymentRequest, appid: str, mchid: str
) -> dict[str, Any]:
    """The body of POST /v3/pay/transactions/{native,jsapi,h5}."""
    body: dict[str, Any] = {
        "appid": appid,
        "mchid": mchid,
        "description": utf8_prefix(request.subject, DESCRIPTION_BYTES) or request.out_trade_no,
        "out_trade_no": request.out_trade_no,
        "time_expire": rfc3339(request.expires_at),
        "notify_url": request.notify_url,
        "amount": {"total": to_fen(request.amount), "currency": CURRENCY},
    }
    if trade_type == "jsapi":
        body["payer"] = {"openid": str(request.options["openid"])}
    elif trade_type == "h5":
        body["scene_info"] = {
            "payer_client_ip": request.client_ip,
            "h5_info": {"type": "Wap"},
        }
    return body


def refund_body(request: RefundRequest) -> dict[str, Any]:
    """The body of POST /v3/refund/domestic/refunds; out_refund_no makes it idempotent."""
    return {
        "out_trade_no": request.out_trade_no,
        "out_refund_no": request.out_refund_no,
        "reason": utf8_prefix(request.payer_note, REASON_BYTES),
        "notify_url": request.notify_url,
        "amount": {
            "refund": to_fen(request.amount),
            "total": to_fen(request.total),
            "currency": CURRENCY,
        },
    }


# Answers -------------------------------------------------------------------------------------


def query_result(transaction: dict[str, Any]) -> PaymentQueryResult:
    """A Transaction (query answer) as knowpay's query result."""
    state = str(transaction.get("trade_state", ""))
    status = trade_status(state)
    amount = money_of(transaction["amount"]) if "amount" in transaction else None
    failed = status in (ChannelStatus.FAILED, ChannelStatus.CLOSED)
    return PaymentQueryResult(
        status=status,
        gateway_trade_no=transaction.get("transaction_id") or None,
        amount=amount,
        paid_at=parse_time(transaction.get("success_time")),
        failure_code=state if failed else None,
        failure_message=transaction.get("trade_state_desc") if failed else None,
    )


def refund_result(refund: dict[str, Any]) -> RefundResult:
    state = str(refund.get("status") or refund.get("refund_status") or "")
    status = refund_status(state)
    return RefundResult(
        status=status,
        gateway_refund_no=refund.get("refund_id") or None,
        failure_code=state if status is ChannelStatus.FAILED or state == "ABNORMAL" else None,
        attention=abnormal_refund_attention(refund) if state == "ABNORMAL" else None,
    )


def abnormal_refund_attention(refund: dict[str, Any]) -> str:
    """WeChat Pay's ABNORMAL refund waits for the merchant: the money could not reach the
    payer's card or account, and is sent again only by hand."""
    return (
        f"WeChat Pay holds refund {refund.get('out_refund_no')} (ABNORMAL): the payer's card or "
        "account can no longer receive it. Send it again through the merchant platform or the "
        "abnormal-refund API (/v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund)."
    )


# Error codes ---------------------------------------------------------------------------------


class ErrorKind(StrEnum):
    """What a WeChat error code means for the caller."""

    RETRY = "retry"
    """WeChat's side failed or throttled us: ask again with the same parameters."""
    DECLINED = "declined"
    """WeChat refused the request; asking again will not change that."""
    ALREADY_PAID = "already_paid"
    """The trade was paid: find out by a (verified) query."""
    NOT_FOUND = "not_found"
    """WeChat has no such trade or refund."""


# Codes are compared without underscores: WeChat's documents spell some both ways
# (ORDER_NOT_EXIST / ORDERNOTEXIST, NOT_ENOUGH / NOTENOUGH).
_CODE_KINDS: dict[str, ErrorKind] = {
    "SYSTEMERROR": ErrorKind.RETRY,
    "BANKERROR": ErrorKind.RETRY,
    "FREQUENCYLIMITED": ErrorKind.RETRY,
    "FREQUENCYLIMITEXCEED": ErrorKind.RETRY,
    "STATEMENTCREATING": ErrorKind.RETRY,
    "ORDERPAID": ErrorKind.ALREADY_PAID,
    "ORDERNOTEXIST": ErrorKind.NOT_FOUND,
    "RESOURCENOTEXISTS": ErrorKind.NOT_FOUND,
    "NOSTATEMENTEXIST": ErrorKind.NOT_FOUND,
}


@dataclass(frozen=True, slots=True)
class WechatPayError:
    """A non-2xx answer: `{"code": …, "message": …}`."""

    status_code: int
    code: str
    message: str

    @property
    def kind(self) -> ErrorKind:
        known = _CODE_KINDS.get(self.code.replace("_", "").upper())
        if known is not None:
            return known
        if self.status_code >= 500 or self.status_code == 429:
            return ErrorKind.RETRY
        return ErrorKind.DECLINED


def error_of(status_code: int, raw: bytes) -> WechatPayError:
    try:
        data = parse_json(raw) if raw else {}
    except NotJson:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = str(data.get("code") or f"HTTP_{status_code}")
    message = str(data.get("message") or raw[:200].decode(errors="replace"))
    return WechatPayError(status_code, code, message)


# Callbacks -----------------------------------------------------------------------------------

PAYMENT_EVENTS = frozenset({"TRANSACTION.SUCCESS"})
REFUND_EVENTS = frozenset({"REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"})


def encrypted_resource(envelope: dict[str, Any]) -> dict[str, str]:
    """The `resource` of a callback, checked to be one we can open."""
    resource = envelope.get("resource")
    if envelope.get("resource_type") != "encrypt-resource" or not isinstance(resource, dict):
        raise ProtocolError("the callback carries no encrypted resource")
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise ProtocolError(f"unsupported resource algorithm {resource.get('algorithm')!r}")
    for field in ("ciphertext", "nonce"):
        if not isinstance(resource.get(field), str):
            raise ProtocolError(f"resource.{field} is missing")
    return {
        "ciphertext": resource["ciphertext"],
        "nonce": resource["nonce"],
        "associated_data": str(resource.get("associated_data") or ""),
    }


def notification_of(
    envelope: dict[str, Any], resource: dict[str, Any], *, appid: str, mchid: str
) -> Notification:
    """A verified, decrypted callback as knowpay's Notification; ProtocolError when it is not
    for our merchant and app or does not follow the protocol."""
    event_type = str(envelope.get("event_type", ""))
    external_id = str(envelope.get("id") or "")
    if not external_id:
        raise ProtocolError("the callback has no id")
    if resource.get("mchid") != mchid:
        raise ProtocolError(f"the callback is for mchid {resource.get('mchid')!r}, not ours")
    out_trade_no = resource.get("out_trade_no")
    if not isinstance(out_trade_no, str) or not out_trade_no:
        raise ProtocolError("the callback has no out_trade_no")
    if event_type in PAYMENT_EVENTS:
        if resource.get("appid") != appid:
            raise ProtocolError(f"the callback is for appid {resource.get('appid')!r}, not ours")
        return Notification(
            kind="payment",
            external_id=external_id,
            out_trade_no=out_trade_no,
            status=trade_status(str(resource.get("trade_state", ""))),
            gateway_trade_no=_optional_text(resource, "transaction_id"),
            amount=money_of(resource.get("amount")),
            merchant_id=mchid,
            paid_at=parse_time(resource.get("success_time")),
            payer_account=_payer_openid(resource),
        )
    if event_type in REFUND_EVENTS:
        return Notification(
            kind="refund",
            external_id=external_id,
            out_trade_no=out_trade_no,
            status=refund_status(str(resource.get("refund_status", ""))),
            attention=abnormal_refund_attention(resource)
            if resource.get("refund_status") == "ABNORMAL"
            else None,
            gateway_trade_no=_optional_text(resource, "transaction_id"),
            amount=money_of(resource.get("amount"), "refund"),
            merchant_id=mchid,
            out_refund_no=_optional_text(resource, "out_refund_no"),
            paid_at=parse_time(resource.get("success_time")),
            gateway_refund_no=_optional_text(resource, "refund_id"),
            trade_amount=_refunded_trade_amount(resource.get("amount")),
        )
    raise ProtocolError(f"unknown event_type {event_type!r}")


def _refunded_trade_amount(amount: Any) -> Money | None:
    """`amount.total` of a refund callback: the whole payment's amount, when it is given."""
    if isinstance(amount, dict) and "total" in amount:
        return money_of(amount, "total")
    return None


def notification_ack(accepted: bool) -> NotificationAck:
    """204 with no body stops WeChat's retries; 4xx with {"code": "FAIL"} asks for a retry."""
    if accepted:
        return NotificationAck(204, b"", "")  # no body, so no Content-Type
    body = json.dumps({"code": "FAIL", "message": "notification not accepted"})
    return NotificationAck(400, body.encode(), "application/json")


def _optional_text(resource: Mapping[str, Any], field: str) -> str | None:
    """A string field of a callback resource, None when absent or empty."""
    value = resource.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"the callback's {field} is not a string: {value!r}"[:200])
    return value


def _payer_openid(resource: Mapping[str, Any]) -> str | None:
    payer = resource.get("payer")
    openid = payer.get("openid") if isinstance(payer, Mapping) else None
    return str(openid) if openid else None
