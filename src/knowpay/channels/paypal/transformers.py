"""PayPal wire ↔ knowpay DTOs: decimal strings ↔ Money (per currency exponent), order and
capture statuses ↔ ChannelStatus, webhook events ↔ Notification, and the 2xx answer
(PROTOCOLS.md §5).

`COMPLETED` on an order is not proof of payment: only a capture in
`purchase_units[].payments.captures[]` whose status is COMPLETED (or since refunded) is."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import (
    ChannelStatus,
    Notification,
    NotificationAck,
    PaymentQueryResult,
    RefundResult,
)
from knowpay.kit.jsontext import NotJson, parse_json
from knowpay.kit.money import Money, MoneyError, currency_exponent

NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})
"""PayPal's currency codes page: these take no decimals ("Decimal amounts cause an error"),
although ISO 4217 gives HUF and TWD two."""

CLOSED_MARK = "knowpay-closed:"
"""Prefix of purchase_units[].custom_id once knowpay has closed the order: no capture after."""

PAID_CAPTURE = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
CAPTURE_STATUS: dict[str, ChannelStatus] = {
    **dict.fromkeys(PAID_CAPTURE, ChannelStatus.SUCCEEDED),
    "PENDING": ChannelStatus.PENDING,
    "DECLINED": ChannelStatus.FAILED,
    "FAILED": ChannelStatus.FAILED,
}
"""A capture that was COMPLETED and later refunded (in part or whole) was still paid."""

ORDER_STATUS: dict[str, ChannelStatus] = {
    "CREATED": ChannelStatus.PENDING,
    "SAVED": ChannelStatus.PENDING,
    "APPROVED": ChannelStatus.PENDING,
    "PAYER_ACTION_REQUIRED": ChannelStatus.PENDING,
    "VOIDED": ChannelStatus.CLOSED,
}
"""An order without captures: never paid yet (COMPLETED without a capture says nothing)."""

REFUND_STATUS: dict[str, ChannelStatus] = {
    "COMPLETED": ChannelStatus.SUCCEEDED,
    "PENDING": ChannelStatus.PENDING,
    "FAILED": ChannelStatus.FAILED,
    "CANCELLED": ChannelStatus.FAILED,
}

PAYMENT_EVENTS = frozenset(
    {
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.DENIED",
        "PAYMENT.CAPTURE.DECLINED",
    }
)
ORDER_APPROVED = "CHECKOUT.ORDER.APPROVED"
CAPTURE_REVERSED = "PAYMENT.CAPTURE.REVERSED"
REFUND_EVENTS = frozenset(
    {"PAYMENT.CAPTURE.REFUNDED", "PAYMENT.REFUND.PENDING", "PAYMENT.REFUND.FAILED"}
)


# Money ------------------------------------------------------------------------------------


def to_value(amount: Money) -> str:
    """Money → PayPal's `value`: the currency's digits ("88.88"), none for JPY/HUF/TWD."""
    if amount.amount_minor <= 0:
        raise ProtocolError(f"PayPal charges positive amounts only, not {amount}")
    if amount.currency in NO_DECIMALS:
        units, rest = divmod(amount.amount_minor, 10 ** currency_exponent(amount.currency))
        if rest:
            raise ProtocolError(f"PayPal takes no decimals in {amount.currency}: {amount}")
        return str(units)
    return amount.to_decimal_string()


def money(data: Any, field: str = "amount") -> Money:
    """PayPal's `{currency_code, value}` → Money, exactly; ProtocolError when malformed."""
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{field} is missing")
    currency, value = data.get("currency_code"), data.get("value")
    if not isinstance(currency, str) or not isinstance(value, str):
        raise ProtocolError(f"{field} is not a PayPal money object: {data!r}")
    try:
        return Money.parse(value, currency)
    except MoneyError as exc:
        raise ProtocolError(f"{field} {value!r} {currency!r} is not an amount: {exc}") from exc


def minimum(currency: str) -> int:
    """The smallest amount PayPal takes, in knowpay's minor units (one whole unit where
    PayPal takes no decimals)."""
    return 10 ** currency_exponent(currency) if currency in NO_DECIMALS else 1


# Orders -----------------------------------------------------------------------------------


def purchase_unit(order: Mapping[str, Any]) -> Mapping[str, Any]:
    units = order.get("purchase_units")
    if not isinstance(units, list) or not units or not isinstance(units[0], Mapping):
        raise ProtocolError("an order without purchase_units")
    unit: Mapping[str, Any] = units[0]
    return unit


def out_trade_no_of(unit: Mapping[str, Any]) -> str | None:
    """knowpay's number: invoice_id, else custom_id (without the closed mark)."""
    for key in ("invoice_id", "custom_id"):
        value = unit.get(key)
        if isinstance(value, str) and value:
            return value.removeprefix(CLOSED_MARK)
    return None


def is_closed(unit: Mapping[str, Any]) -> bool:
    """Whether knowpay closed this order (its custom_id carries the mark)."""
    custom_id = unit.get("custom_id")
    return isinstance(custom_id, str) and custom_id.startswith(CLOSED_MARK)


def captures(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every capture of every purchase unit."""
    found: list[Mapping[str, Any]] = []
    for unit in order.get("purchase_units") or []:
        payments = unit.get("payments") if isinstance(unit, Mapping) else None
        for capture in (payments or {}).get("captures") or []:
            if isinstance(capture, Mapping):
                found.append(capture)
    return found


def capture_status(text: object) -> ChannelStatus:
    """An unknown or missing status means pending: only explicit outcomes are final."""
    return CAPTURE_STATUS.get(text if isinstance(text, str) else "", ChannelStatus.PENDING)


def order_result(order: Mapping[str, Any]) -> PaymentQueryResult:
    """An order (GET or capture answer) as the core sees a trade. Paid only with a paid
    capture; a pending capture wins over a declined one (it may still complete)."""
    order_id = _text(order, "id")
    found = captures(order)
    if not found:
        status = ORDER_STATUS.get(_text(order, "status") or "", ChannelStatus.PENDING)
        return PaymentQueryResult(status=status, gateway_trade_no=order_id)
    by_status = {capture_status(c.get("status")): c for c in found}
    paid = by_status.get(ChannelStatus.SUCCEEDED)
    if paid is not None:
        return PaymentQueryResult(
            status=ChannelStatus.SUCCEEDED,
            gateway_trade_no=order_id,
            amount=money(paid.get("amount"), "captures[].amount"),
            paid_at=parse_time(_text(paid, "create_time")),
        )
    declined = by_status.get(ChannelStatus.FAILED)
    if declined is None or ChannelStatus.PENDING in by_status:
        return PaymentQueryResult(status=ChannelStatus.PENDING, gateway_trade_no=order_id)
    details = declined.get("status_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    return PaymentQueryResult(
        status=ChannelStatus.FAILED,
        gateway_trade_no=order_id,
        failure_code=str(reason or declined.get("status")),
        failure_message=f"PayPal's capture is {declined.get('status')}",
    )


def paid_capture_id(order: Mapping[str, Any]) -> str | None:
    """The id of the order's paid capture (what a refund is made against)."""
    for capture in captures(order):
        if capture.get("status") in PAID_CAPTURE and _text(capture, "id"):
            return _text(capture, "id")
    return None


def approval_url(order: Mapping[str, Any]) -> str:
    """Where the buyer approves: the `approve` link (or `payer-action`, PayPal's newer name)."""
    links = {
        link.get("rel"): link.get("href")
        for link in order.get("links") or []
        if isinstance(link, Mapping)
    }
    for rel in ("approve", "payer-action"):
        href = links.get(rel)
        if isinstance(href, str) and href.startswith(("https://", "http://")):
            return href
    raise ProtocolError("the order has no approve or payer-action link")


# Refunds ----------------------------------------------------------------------------------


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    status = REFUND_STATUS.get(_text(refund, "status") or "", ChannelStatus.PENDING)
    reason = refund.get("status_details")
    code = reason.get("reason") if isinstance(reason, Mapping) else None
    failed = status is ChannelStatus.FAILED
    return RefundResult(
        status=status,
        gateway_refund_no=_text(refund, "id"),
        failure_code=str(code or refund.get("status")) if failed else None,
        failure_message="PayPal did not complete the refund" if failed else None,
    )


# Webhooks ---------------------------------------------------------------------------------


def parse_event(body: bytes) -> dict[str, Any]:
    """The webhook's JSON event (after its signature was checked over these bytes)."""
    try:
        event = parse_json(body)
    except NotJson as exc:
        raise ProtocolError(f"the webhook is not JSON: {exc}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("resource"), dict):
        raise ProtocolError("the webhook is not a PayPal event (no resource)")
    if not _text(event, "id") or not _text(event, "event_type"):
        raise ProtocolError("the webhook has no id or event_type")
    return event


def capture_notification(event: Mapping[str, Any]) -> Notification:
    """PAYMENT.CAPTURE.*: the resource is the capture; its order id is in
    supplementary_data.related_ids.order_id (knowpay's gateway_trade_no)."""
    capture: Mapping[str, Any] = event["resource"]
    # Without them it is no capture of ours (one made elsewhere on the account): the core
    # answers it as an unknown trade, which PayPal is told to stop sending.
    out_trade_no = out_trade_no_of(capture) or ""
    supplementary = capture.get("supplementary_data")
    related = supplementary.get("related_ids") if isinstance(supplementary, Mapping) else None
    order_id = related.get("order_id") if isinstance(related, Mapping) else None
    if not isinstance(order_id, str) or not order_id:
        raise ProtocolError("a capture event without supplementary_data.related_ids.order_id")
    event_type = str(event["event_type"])
    status = (
        capture_status(capture.get("status"))
        if event_type == "PAYMENT.CAPTURE.COMPLETED"
        else ChannelStatus.PENDING
        if event_type == "PAYMENT.CAPTURE.PENDING"
        else ChannelStatus.FAILED
    )
    failure_code = failure_message = None
    if status is ChannelStatus.FAILED:
        details = capture.get("status_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        failure_code = str(reason or capture.get("status") or event_type)
        failure_message = f"PayPal's capture is {capture.get('status')}"
    return Notification(
        kind="payment",
        external_id=str(event["id"]),
        out_trade_no=out_trade_no,
        status=status,
        gateway_trade_no=order_id,
        amount=money(capture.get("amount"), "resource.amount"),
        merchant_id=_payee(capture),
        failure_code=failure_code,
        failure_message=failure_message,
        paid_at=parse_time(_text(capture, "create_time"))
        if status is ChannelStatus.SUCCEEDED
        else None,
    )


def refund_notification(event: Mapping[str, Any]) -> Notification:
    """PAYMENT.CAPTURE.REFUNDED (and the refund's own events): the resource is the refund;
    knowpay sent its out_refund_no as the refund's custom_id and out_trade_no as invoice_id."""
    refund: Mapping[str, Any] = event["resource"]
    # A refund made in PayPal's dashboard names no refund of ours: an unknown trade.
    out_trade_no = _text(refund, "invoice_id") or ""
    result = refund_result(refund)
    return Notification(
        kind="refund",
        external_id=str(event["id"]),
        out_trade_no=out_trade_no,
        status=result.status,
        amount=money(refund.get("amount"), "resource.amount"),
        out_refund_no=_text(refund, "custom_id"),
        gateway_refund_no=result.gateway_refund_no,
        failure_code=result.failure_code,
        failure_message=result.failure_message,
    )


def other_event(event: Mapping[str, Any]) -> Notification:
    """A verified event knowpay does not act on (CHECKOUT.ORDER.COMPLETED, disputes …): stored
    once and acknowledged, or PayPal would send it again for 3 days. A reversed capture (a
    chargeback, a bank reversal) takes money back, which knowpay cannot undo on its own: staff
    are told."""
    resource: Mapping[str, Any] = event["resource"]
    out_trade_no = out_trade_no_of(resource) or ""
    event_type = str(event["event_type"])
    attention = None
    if event_type == CAPTURE_REVERSED:
        attention = (
            f"PayPal reversed capture {_text(resource, 'id')} of payment "
            f"{out_trade_no or '(not ours)'} (event {event['id']}): the money went back to the "
            "payer. Review the order, its content and the ledger."
        )
    return Notification(
        kind="payment",
        external_id=str(event["id"]),
        out_trade_no=out_trade_no,
        status=ChannelStatus.PENDING,
        attention=attention,
    )


def ack(accepted: bool) -> NotificationAck:
    """PayPal stops retrying on any 2xx; a 400 has it try again later."""
    body = b'{"received":true}' if accepted else b'{"received":false}'
    return NotificationAck(200 if accepted else 400, body, "application/json")


# Times ------------------------------------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """PayPal's RFC 3339 times ("2024-01-01T12:00:00Z", "…+0000" in reports) → aware UTC."""
    if not text:
        return None
    cleaned = text.replace("Z", "+00:00")
    if len(cleaned) > 5 and cleaned[-5] in "+-" and cleaned[-3] != ":":
        cleaned = f"{cleaned[:-2]}:{cleaned[-2:]}"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise ProtocolError(f"not a PayPal time: {text!r}") from exc
    if moment.tzinfo is None:
        raise ProtocolError(f"a PayPal time without an offset: {text!r}")
    return moment


def _payee(resource: Mapping[str, Any]) -> str | None:
    payee = resource.get("payee")
    if isinstance(payee, Mapping) and isinstance(payee.get("merchant_id"), str):
        return str(payee["merchant_id"])
    return None


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    return str(value)
