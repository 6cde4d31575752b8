"""UnionPay wire ↔ knowpay DTOs: fen ↔ Money, knowpay ids ↔ orderId and txnTime, Beijing
times, response codes ↔ ChannelStatus, notifications, the answer UnionPay expects, the
synchronous answer's `k=v&…` text, and the payload of knowpay's front-form page.

orderId. UnionPay wants 8-40 letters and digits; knowpay's ids are lower-case letters and
digits with `_` (and `-` in a retried refund's number). The mapping is reversible: `_`
becomes `X` and `-` becomes `Y` (upper case never occurs in knowpay's ids), so
`pay_01jd3k…` is orderId `payX01jd3k…` and back.

txnTime. UnionPay finds a transaction by orderId *and* txnTime, yet a query or refund query
is asked by knowpay's id alone. knowpay's ids begin with their creation time (the ULID
layout of kit/ids.py: 10 Crockford base32 characters of Unix milliseconds after the
prefix), so txnTime is that moment in Beijing time: the same on every retry, recoverable
from the id alone, and within milliseconds of the actual send.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import ChannelStatus, Notification, NotificationAck
from knowpay.kit.jsontext import NotJson, parse_json
from knowpay.kit.money import Money

CURRENCY = "CNY"
CURRENCY_CODE = "156"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y%m%d%H%M%S"
DESKTOP, MOBILE = "07", "08"
"""channelType: 07 a PC browser, 08 a phone's browser."""

SUCCESS_CODES = frozenset({"00", "A6"})
"""00 success; A6 partial success (the money moved)."""
IN_DOUBT_CODES = frozenset({"03", "04", "05"})
"""Timed out, state unknown, accepted: ask again later."""
BUSY_CODES = frozenset({"02", "06"})
"""The gateway is closed or busy: nothing was done, try again."""
NOT_FOUND = "34"
"""No such transaction (a front consume the buyer has not paid is not one yet)."""
DUPLICATE = "12"
"""A repeated orderId + txnTime: the first request's outcome is what a query tells."""

MAX_PAY_WINDOW = timedelta(hours=2)
"""The longest payTimeout after txnTime knowpay asks for: a payment attempt is one checkout."""
CLOCK_GRACE = timedelta(minutes=2)
"""Allowance for UnionPay's clock before an unpaid transaction is called closed."""

_REFERENCE = re.compile(r"^[a-z0-9_-]+$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9]{8,40}$")
_FEN = re.compile(r"^(0|[1-9][0-9]{0,11})$")
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_FIELD_NAME = re.compile(r"^[A-Za-z0-9]{1,64}$")
MAX_FORM_FIELDS = 64
MAX_FORM_BYTES = 16_384

ACK_OK = b"ok"
ACK_FAIL = b"fail"


# Money ---------------------------------------------------------------------------------


def to_fen(amount: Money) -> str:
    """Money → txnAmt, an integer count of fen (CNY only)."""
    if amount.currency != CURRENCY:
        raise ProtocolError(f"UnionPay charges CNY only here, not {amount.currency}")
    if amount.amount_minor <= 0:
        raise ProtocolError(f"UnionPay cannot charge {amount}")
    return str(amount.amount_minor)


def from_fen(text: str | None, currency_code: str | None = CURRENCY_CODE) -> Money:
    """txnAmt (fen) → Money; ProtocolError when missing, malformed or not in yuan."""
    if text is None or not _FEN.match(text):
        raise ProtocolError(f"txnAmt {text!r} is not an amount in fen")
    if currency_code not in (None, "", CURRENCY_CODE):
        raise ProtocolError(f"currencyCode {currency_code!r} is not 156 (CNY)")
    return Money(int(text), CURRENCY)


# Ids and times -------------------------------------------------------------------------


def order_id(reference: str) -> str:
    """knowpay's out_trade_no / out_refund_no → UnionPay's orderId (reversible)."""
    if not _REFERENCE.match(reference):
        raise ProtocolError(f"{reference!r} cannot be a UnionPay orderId")
    mapped = reference.replace("_", "X").replace("-", "Y")
    if not _ORDER_ID.match(mapped):
        raise ProtocolError(f"orderId {mapped!r} is not 8-40 letters and digits")
    return mapped


def reference(order: str) -> str:
    """UnionPay's orderId → knowpay's out_trade_no / out_refund_no."""
    if not _ORDER_ID.match(order):
        raise ProtocolError(f"orderId {order!r} is not 8-40 letters and digits")
    return order.replace("X", "_").replace("Y", "-")


def created_at(reference: str) -> datetime:
    """When a knowpay id was made: the milliseconds its first 10 body characters encode."""
    _, separator, body = reference.partition("_")
    head = body[:10]
    if not separator or len(head) != 10 or any(c not in _CROCKFORD for c in head):
        raise ProtocolError(f"{reference!r} is not a knowpay id: it carries no creation time")
    millis = 0
    for char in head:
        millis = millis * 32 + _CROCKFORD.index(char)
    return datetime.fromtimestamp(millis / 1000, UTC).replace(microsecond=0)


def txn_time(reference: str) -> str:
    """The txnTime knowpay sends (and asks with) for an id: its creation time, Beijing."""
    return beijing_time(created_at(reference))


def beijing_time(moment: datetime) -> str:
    """A moment as UnionPay writes it: `yyyyMMddHHmmss` in Beijing time."""
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_beijing_time(text: str | None) -> datetime | None:
    """UnionPay's `yyyyMMddHHmmss` (Beijing) → an aware UTC datetime (None when absent)."""
    if not text:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)
    except ValueError as exc:
        raise ProtocolError(f"not a UnionPay time: {text!r}") from exc


def pay_deadline(reference: str, expires_at: datetime) -> datetime:
    """The moment payTimeout names: the order's expiry, but never more than MAX_PAY_WINDOW
    after txnTime."""
    return min(expires_at, created_at(reference) + MAX_PAY_WINDOW)


def pay_timeout(reference: str, expires_at: datetime) -> str:
    """payTimeout: the order's expiry, but never more than MAX_PAY_WINDOW after txnTime."""
    return beijing_time(pay_deadline(reference, expires_at))


def surely_expired(reference: str, now: datetime) -> bool:
    """True once no payTimeout knowpay can have sent for this id is still running."""
    return now > created_at(reference) + MAX_PAY_WINDOW + CLOCK_GRACE


def channel_type(options: Mapping[str, Any]) -> str:
    """07 (PC) unless the payment's options say the payer is on a phone."""
    if options.get("channel_type") in (DESKTOP, MOBILE):
        return str(options["channel_type"])
    return MOBILE if options.get("device") == "mobile" else DESKTOP


def risk_rate_info(subject: str) -> str:
    """`{commodityName=…}`: the subject without the characters that structure the field."""
    cleaned = " ".join(re.sub(r"[{}&=\[\]]", " ", subject).split())[:40] or "-"
    return "{commodityName=" + cleaned + "}"


# Statuses ------------------------------------------------------------------------------


def original_status(orig_resp_code: str | None) -> ChannelStatus:
    """A query's origRespCode: 00/A6 paid, 03/04/05 still in doubt, anything else failed."""
    if orig_resp_code in SUCCESS_CODES:
        return ChannelStatus.SUCCEEDED
    if not orig_resp_code or orig_resp_code in IN_DOUBT_CODES:
        return ChannelStatus.PENDING
    return ChannelStatus.FAILED


def notification(params: Mapping[str, str]) -> Notification:
    """A verified back notification, reduced to what the core needs.

    txnType 01 is the consume (UnionPay notifies only successes); 04 a refund, whose
    orderId is knowpay's out_refund_no and whose reqReserved carries the out_trade_no
    knowpay put there. external_id is queryId and txnType: the same across UnionPay's five
    sends, different for a refund of the same consume."""
    txn_type = params.get("txnType")
    query_id = params.get("queryId")
    order = params.get("orderId")
    if not query_id or not order:
        raise ProtocolError("a notification without queryId or orderId")
    code = params.get("respCode")
    amount = from_fen(params.get("txnAmt"), params.get("currencyCode"))
    if txn_type == "01":
        status = ChannelStatus.SUCCEEDED if code in SUCCESS_CODES else ChannelStatus.PENDING
        return Notification(
            kind="payment",
            external_id=f"{query_id}:{txn_type}",
            out_trade_no=reference(order),
            status=status,
            gateway_trade_no=query_id,
            amount=amount,
            merchant_id=params.get("merId"),
        )
    if txn_type == "04":
        if code in SUCCESS_CODES:
            status = ChannelStatus.SUCCEEDED
        elif code in IN_DOUBT_CODES:
            status = ChannelStatus.PENDING
        else:
            status = ChannelStatus.FAILED
        failed = status is ChannelStatus.FAILED
        return Notification(
            kind="refund",
            external_id=f"{query_id}:{txn_type}",
            out_trade_no=params.get("reqReserved", ""),
            status=status,
            gateway_trade_no=params.get("origQryId"),
            amount=amount,
            merchant_id=params.get("merId"),
            out_refund_no=reference(order),
            gateway_refund_no=query_id,
            # A failed refund keeps UnionPay's word, as the synchronous refusal does.
            failure_code=(code or "unknown") if failed else None,
            failure_message=params.get("respMsg") if failed else None,
        )
    raise ProtocolError(f"unexpected txnType {txn_type!r} in a notification")


def ack(accepted: bool) -> NotificationAck:
    """UnionPay stops re-sending on HTTP 200; anything else is sent again (five sends)."""
    if accepted:
        return NotificationAck(200, ACK_OK, "text/plain")
    return NotificationAck(400, ACK_FAIL, "text/plain")


# The synchronous answer ----------------------------------------------------------------


def parse_response(text: str) -> dict[str, str]:
    """UnionPay's answer body: `k=v&…` with raw values (not URL-encoded: a `+` in the
    signature is a plus). A value may hold `&` inside `{…}` or `[…]`, as the official SDK's
    `parseQString` allows. ProtocolError when it is not such a body."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    if not body:
        raise ProtocolError("an empty answer")
    params: dict[str, str] = {}
    key: str | None = None
    buffer: list[str] = []
    closing: str | None = None
    depth = 0
    for char in body:
        if key is None:
            if char == "=":
                key, buffer = "".join(buffer), []
            elif char == "&":
                raise ProtocolError("a field without '='")
            else:
                buffer.append(char)
            continue
        if closing is None and char in "{[":
            closing, depth = ("}" if char == "{" else "]"), 1
        elif closing is not None and char == ("{" if closing == "}" else "["):
            depth += 1
        elif closing is not None and char == closing:
            depth -= 1
            if depth == 0:
                closing = None
        if char == "&" and closing is None:
            _put(params, key, "".join(buffer))
            key, buffer = None, []
        else:
            buffer.append(char)
    if key is None:
        raise ProtocolError("the answer ends with a field without '='")
    _put(params, key, "".join(buffer))
    return params


def _put(params: dict[str, str], key: str, value: str) -> None:
    if not key:
        raise ProtocolError("a field without a name")
    if key in params:
        raise ProtocolError(f"the answer repeats {key!r}")
    params[key] = value


# knowpay's front-form page -------------------------------------------------------------


def encode_form(fields: Mapping[str, str]) -> str:
    """The signed front-consume fields as the `f` query value of /forms/unionpay."""
    data = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_form(value: str) -> dict[str, str]:
    """The fields an `f` value carries; ValueError when it is not what encode_form made."""
    if len(value) > MAX_FORM_BYTES * 2:
        raise ValueError("f is too long")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = parse_json(raw)
    except (binascii.Error, NotJson) as exc:
        raise ValueError("f is not base64url JSON") from exc  # no parser internals to the page
    if not isinstance(data, dict) or not data or len(data) > MAX_FORM_FIELDS:
        raise ValueError("f is not an object of form fields")
    fields: dict[str, str] = {}
    for name, field_value in data.items():
        if not _FIELD_NAME.match(name) or not isinstance(field_value, str):
            raise ValueError(f"f holds a field that is not a UnionPay field: {name!r}")
        fields[name] = field_value
    return fields
