"""PayPal's REST operations as the simulator answers them: Orders v2 (create, show, update,
capture), Payments v2 (show capture, refund, show refund), Transaction Search and
verify-webhook-signature. Each returns (HTTP status, JSON body) or raises ApiError.

`PayPal-Request-Id` makes create, capture and refund idempotent: the same id again gets the
first answer back with 200 instead of 201, and nothing happens twice."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from knowpay.sandbox.paypal import crypto
from knowpay.sandbox.paypal.faults import CAPTURE_FAULTS
from knowpay.sandbox.paypal.simulator import PayPalSimulator
from knowpay.sandbox.paypal.store import (
    ApiError,
    Capture,
    Order,
    Refund,
    fmt,
    now_utc,
    parse_money,
    paypal_id,
    stamp,
)

Answer = tuple[int, dict[str, Any]]
PATCHABLE = frozenset({"CREATED", "APPROVED"})
PAID = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
MAX_SEARCH_DAYS = 31
_TEXT_FIELDS = {"custom_id": 127, "invoice_id": 127, "description": 127}


def _replayed(sim: PayPalSimulator, operation: str, request_id: str | None) -> Answer | None:
    if not request_id:
        return None
    kept = sim.book.replays.get((operation, request_id))
    return (200, kept[1]) if kept else None


def _keep(sim: PayPalSimulator, operation: str, request_id: str | None, answer: Answer) -> Answer:
    if request_id:
        sim.book.replays[(operation, request_id)] = answer
    return answer


def _minimal(data: dict[str, Any], prefer: str | None) -> dict[str, Any]:
    if prefer and "return=representation" in prefer:
        return data
    return {key: data[key] for key in ("id", "status", "links") if key in data}


def _text(body: Mapping[str, Any], key: str, path: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _TEXT_FIELDS.get(key, 255):
        raise ApiError(
            422,
            "INVALID_STRING_LENGTH",
            "The value of a field is either too short or too long.",
            field=f"{path}/{key}",
        )
    return value


# Orders -----------------------------------------------------------------------------------


def create_order(
    sim: PayPalSimulator, body: Any, request_id: str | None, prefer: str | None
) -> Answer:
    with sim.book.lock:
        replay = _replayed(sim, "orders.create", request_id)
        if replay:
            return replay
        if not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
        if body.get("intent") != "CAPTURE":
            issue = (
                "MISSING_REQUIRED_PARAMETER" if "intent" not in body else "INVALID_PARAMETER_VALUE"
            )
            raise ApiError(
                400 if issue.startswith("MISSING") else 422,
                issue,
                "The simulator takes intent CAPTURE only.",
                field="/intent",
            )
        units = body.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            raise ApiError(
                400,
                "INVALID_ARRAY_LENGTH",
                "The simulator takes one purchase unit.",
                field="/purchase_units",
            )
        unit = units[0]
        reference_id = unit.get("reference_id") or "default"
        path = f"/purchase_units/@reference_id=='{reference_id}'"
        currency, value = parse_money(unit.get("amount"), f"{path}/amount")
        experience, approve_rel, status = _experience(body)
        now = now_utc()
        order = Order(
            id=paypal_id(),
            status=status,
            currency=currency,
            value=value,
            reference_id=str(reference_id),
            invoice_id=_text(unit, "invoice_id", path),
            custom_id=_text(unit, "custom_id", path),
            description=_text(unit, "description", path),
            return_url=experience.get("return_url"),
            cancel_url=experience.get("cancel_url"),
            approve_rel=approve_rel,
            created_at=now,
            updated_at=now,
        )
        sim.book.orders[order.id] = order
        return _keep(
            sim, "orders.create", request_id, (201, _minimal(sim.writer.order(order), prefer))
        )


def _experience(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str]:
    """Return/cancel URLs and how approval is asked for: `payment_source.paypal.
    experience_context` (PAYER_ACTION_REQUIRED, rel payer-action) or the older
    `application_context` (CREATED, rel approve)."""
    source = body.get("payment_source")
    if isinstance(source, dict) and isinstance(source.get("paypal"), dict):
        context = source["paypal"].get("experience_context") or {}
        return context, "payer-action", "PAYER_ACTION_REQUIRED"
    context = body.get("application_context") or {}
    return (context if isinstance(context, dict) else {}), "approve", "CREATED"


def show_order(sim: PayPalSimulator, order_id: str) -> Answer:
    with sim.book.lock:
        return 200, sim.writer.order(sim.book.order(order_id))


def patch_order(sim: PayPalSimulator, order_id: str, body: Any) -> Answer:
    with sim.book.lock:
        order = sim.book.order(order_id)
        if not isinstance(body, list) or not body:
            raise ApiError(400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
        if order.status in ("COMPLETED", "VOIDED"):
            raise ApiError(
                422,
                "ORDER_COMPLETED_OR_VOIDED",
                "Order is voided or completed and hence cannot be patched.",
            )
        if order.status not in PATCHABLE:
            raise ApiError(
                422,
                order.status,
                f"An order that is {order.status} cannot be "
                "patched; only CREATED or APPROVED orders can.",
            )
        prefix = f"/purchase_units/@reference_id=='{order.reference_id}'/"
        changes: list[tuple[str, str | None]] = []
        for op in body:
            if not isinstance(op, dict) or op.get("op") not in ("replace", "add", "remove"):
                raise ApiError(422, "INVALID_PATCH_OPERATION", "The operation cannot be honored.")
            path = str(op.get("path", ""))
            name = path.removeprefix(prefix)
            if not path.startswith(prefix) or name not in _TEXT_FIELDS:
                raise ApiError(422, "NOT_PATCHABLE", "Cannot be patched.", field=path)
            value = None if op["op"] == "remove" else op.get("value")
            if value is not None and (
                not isinstance(value, str) or len(value) > _TEXT_FIELDS[name]
            ):
                raise ApiError(
                    422, "INVALID_PARAMETER_VALUE", "The value of a field is invalid.", field=path
                )
            changes.append((name, value))
        for name, value in changes:
            setattr(order, name, value)
        order.updated_at = now_utc()
        return 204, {}


def capture_order(
    sim: PayPalSimulator, order_id: str, request_id: str | None, prefer: str | None
) -> Answer:
    events: list[tuple[str, Capture]] = []
    with sim.book.lock:
        replay = _replayed(sim, "orders.capture", request_id)
        if replay:
            return replay
        order = sim.book.order(order_id)
        if order.status == "COMPLETED":
            raise ApiError(
                422,
                "ORDER_ALREADY_CAPTURED",
                "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
            )
        if order.status != "APPROVED":
            raise ApiError(
                422,
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order "
                "for payment. Please redirect the payer to the 'rel':'approve' url "
                "returned as part of the HATEOAS links within the Create Order "
                "call or provide a valid payment_source in the request.",
            )
        if order.invoice_id and any(
            other.id != order.id
            and other.invoice_id == order.invoice_id
            and any(c.status in PAID for c in other.captures)
            for other in sim.book.orders.values()
        ):
            raise ApiError(
                422,
                "DUPLICATE_INVOICE_ID",
                "Duplicate Invoice ID detected. To "
                "avoid a potential duplicate transaction your account setting "
                "requires that Invoice ID be unique for each transaction.",
            )
        faults = {f.kind for f in sim.faults.take(CAPTURE_FAULTS, order.invoice_id, limit=1)}
        if "instrument_declined" in faults:
            raise ApiError(
                422,
                "INSTRUMENT_DECLINED",
                "The instrument presented was either "
                "declined by the processor or bank, or it can't be used for this "
                "payment.",
            )
        now = now_utc()
        status, reason = "COMPLETED", None
        if "capture_declined" in faults:
            status, reason = "DECLINED", "DECLINED_BY_RISK_FRAUD_FILTERS"
        elif "capture_pending" in faults:
            status, reason = "PENDING", "PENDING_REVIEW"
        capture = Capture(
            id=paypal_id(),
            order_id=order.id,
            status=status,
            currency=order.currency,
            value=order.value,
            invoice_id=order.invoice_id,
            custom_id=order.custom_id,
            created_at=now,
            updated_at=now,
            reason=reason,
        )
        order.captures.append(capture)
        order.status = "COMPLETED"
        order.updated_at = now
        sim.book.captures[capture.id] = capture
        events.append((_capture_event(capture), capture))
        data = sim.writer.order(order)
        if not (prefer and "return=representation" in prefer):
            data = {
                k: data[k]
                for k in ("id", "status", "purchase_units", "payer", "links")
                if k in data
            }
        answer = _keep(sim, "orders.capture", request_id, (201, data))
    for event_type, captured in events:
        emit_capture(sim, event_type, captured)
    return answer


def _capture_event(capture: Capture) -> str:
    return {
        "COMPLETED": "PAYMENT.CAPTURE.COMPLETED",
        "PENDING": "PAYMENT.CAPTURE.PENDING",
    }.get(capture.status, "PAYMENT.CAPTURE.DENIED")


def emit_capture(sim: PayPalSimulator, event_type: str, capture: Capture) -> None:
    with sim.book.lock:
        resource = sim.writer.capture(capture)
    verb = {"PAYMENT.CAPTURE.COMPLETED": "completed", "PAYMENT.CAPTURE.PENDING": "pending"}
    amount = f"{fmt(capture.currency, capture.value)} {capture.currency}"
    summary = f"Payment {verb.get(event_type, 'denied')} for {amount}"
    sim.emit(event_type, "capture", resource, capture.invoice_id, summary)


def settle_capture(sim: PayPalSimulator, capture_id: str, outcome: str) -> Capture:
    """A PENDING capture completes (or is denied) later, and says so by webhook."""
    with sim.book.lock:
        capture = sim.book.capture(capture_id)
        if capture.status != "PENDING":
            raise ApiError(422, "CAPTURE_NOT_PENDING", f"The capture is {capture.status}.")
        capture.status = "COMPLETED" if outcome == "complete" else "DECLINED"
        capture.reason = None if outcome == "complete" else "DECLINED_BY_RISK_FRAUD_FILTERS"
        capture.updated_at = now_utc()
    emit_capture(sim, _capture_event(capture), capture)
    return capture


# Payments ---------------------------------------------------------------------------------


def show_capture(sim: PayPalSimulator, capture_id: str) -> Answer:
    with sim.book.lock:
        return 200, sim.writer.capture(sim.book.capture(capture_id))


def refund_capture(
    sim: PayPalSimulator, capture_id: str, body: Any, request_id: str | None, prefer: str | None
) -> Answer:
    with sim.book.lock:
        replay = _replayed(sim, "captures.refund", request_id)
        if replay:
            return replay
        capture = sim.book.capture(capture_id)
        body = body if isinstance(body, dict) else {}
        if capture.status == "REFUNDED":
            raise ApiError(
                422, "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded."
            )
        if capture.status not in PAID:
            raise ApiError(
                422, "CANNOT_BE_REFUNDED", f"A {capture.status} capture cannot be refunded."
            )
        remaining = capture.value - capture.refunded
        if "amount" in body:
            currency, value = parse_money(body["amount"], "/amount")
            if currency != capture.currency:
                raise ApiError(
                    422,
                    "REFUND_CAPTURE_CURRENCY_MISMATCH",
                    "Refund must be in the same currency as the capture.",
                )
        else:
            value = remaining
        if value > remaining:
            raise ApiError(
                422,
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than "
                "or equal to the capture amount that has not yet been refunded.",
            )
        pending = bool(sim.faults.take(frozenset({"refund_pending"}), capture.invoice_id, limit=1))
        now = now_utc()
        refund = Refund(
            id=paypal_id(),
            capture_id=capture.id,
            order_id=capture.order_id,
            status="PENDING" if pending else "COMPLETED",
            currency=capture.currency,
            value=value,
            invoice_id=_text(body, "invoice_id", ""),
            custom_id=_text(body, "custom_id", ""),
            note_to_payer=body.get("note_to_payer")
            if isinstance(body.get("note_to_payer"), str)
            else None,
            created_at=now,
            updated_at=now,
        )
        capture.refunds.append(refund)
        sim.book.refunds[refund.id] = refund
        if not pending:
            _apply_refund(capture)
        answer = _keep(
            sim, "captures.refund", request_id, (201, _minimal(sim.writer.refund(refund), prefer))
        )
    if not pending:
        emit_refund(sim, refund)
    return answer


def _apply_refund(capture: Capture) -> None:
    capture.status = "REFUNDED" if capture.refunded >= capture.value else "PARTIALLY_REFUNDED"
    capture.updated_at = now_utc()


def emit_refund(sim: PayPalSimulator, refund: Refund) -> None:
    with sim.book.lock:
        resource = sim.writer.refund(refund)
        order = sim.book.orders.get(refund.order_id)
    summary = (
        f"A {fmt(refund.currency, refund.value)} {refund.currency} capture payment was refunded"
    )
    out_trade_no = order.invoice_id if order else refund.invoice_id
    sim.emit("PAYMENT.CAPTURE.REFUNDED", "refund", resource, out_trade_no, summary)


def complete_refund(sim: PayPalSimulator, refund_id: str) -> Refund:
    """A PENDING refund completes, and PAYMENT.CAPTURE.REFUNDED goes out."""
    with sim.book.lock:
        refund = sim.book.refund(refund_id)
        if refund.status != "PENDING":
            raise ApiError(422, "REFUND_NOT_PENDING", f"The refund is {refund.status}.")
        refund.status = "COMPLETED"
        refund.updated_at = now_utc()
        _apply_refund(sim.book.capture(refund.capture_id))
    emit_refund(sim, refund)
    return refund


def show_refund(sim: PayPalSimulator, refund_id: str) -> Answer:
    with sim.book.lock:
        return 200, sim.writer.refund(sim.book.refund(refund_id))


# Reporting --------------------------------------------------------------------------------


def _search_time(text: str | None, name: str) -> datetime:
    if not text:
        raise ApiError(
            400, "MISSING_REQUIRED_PARAMETER", f"{name} is required.", field=name, location="query"
        )
    cleaned = text.replace("Z", "+00:00")
    if len(cleaned) > 5 and cleaned[-5] in "+-" and cleaned[-3] != ":":
        cleaned = f"{cleaned[:-2]}:{cleaned[-2:]}"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(
            400,
            "INVALID_PARAMETER_SYNTAX",
            f"{name} is not a date-time with an offset.",
            field=name,
            value=text,
            location="query",
        )
    return moment


def search_transactions(sim: PayPalSimulator, params: Mapping[str, str]) -> Answer:
    start = _search_time(params.get("start_date"), "start_date")
    end = _search_time(params.get("end_date"), "end_date")
    if end < start or end - start > timedelta(days=MAX_SEARCH_DAYS):
        raise ApiError(
            400,
            "INVALID_REQUEST",
            "Date range is greater than 31 days",
            field="end_date",
            location="query",
        )
    page_size = min(max(int(params.get("page_size") or 100), 1), 500)
    page = max(int(params.get("page") or 1), 1)
    rows: list[tuple[datetime, dict[str, Any]]] = []
    with sim.book.lock:
        for capture in sim.book.captures.values():
            if capture.status in PAID and start <= capture.created_at <= end:
                rows.append((capture.created_at, _info(capture, "T0006", capture.value, None)))
            for refund in capture.refunds:
                if refund.status == "COMPLETED" and start <= refund.created_at <= end:
                    rows.append(
                        (refund.created_at, _info(refund, "T1107", -refund.value, capture.id))
                    )
    rows.sort(key=lambda row: row[0])
    total_pages = max((len(rows) + page_size - 1) // page_size, 1)
    chosen = rows[(page - 1) * page_size : page * page_size]
    return 200, {
        "transaction_details": [{"transaction_info": info} for _, info in chosen],
        "account_number": sim.merchant_id,
        "start_date": stamp(start),
        "end_date": stamp(end),
        "last_refreshed_datetime": stamp(now_utc()),
        "page": page,
        "total_items": len(rows),
        "total_pages": total_pages,
        "links": [],
    }


def _info(
    item: Capture | Refund, code: str, value: Decimal, reference: str | None
) -> dict[str, Any]:
    when = item.created_at.strftime("%Y-%m-%dT%H:%M:%S+0000")
    info: dict[str, Any] = {
        "transaction_id": item.id,
        "transaction_event_code": code,
        "transaction_initiation_date": when,
        "transaction_updated_date": item.updated_at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "transaction_amount": {"currency_code": item.currency, "value": fmt(item.currency, value)},
        "transaction_status": "S",
        "protection_eligibility": "01",
    }
    if item.invoice_id:
        info["invoice_id"] = item.invoice_id
    if item.custom_id:
        info["custom_field"] = item.custom_id
    if reference:
        info["paypal_reference_id"] = reference
        info["paypal_reference_id_type"] = "TXN"
    return info


# Webhook verification ---------------------------------------------------------------------


def raw_member(text: str, name: str) -> str | None:
    """The exact text of a top-level member's value (never re-serialised)."""
    decoder = json.JSONDecoder()
    index = _skip(text, 0)
    if index >= len(text) or text[index] != "{":
        return None
    index = _skip(text, index + 1)
    while index < len(text) and text[index] == '"':
        key, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
        index = _skip(text, index)
        if index >= len(text) or text[index] != ":":
            return None
        start = _skip(text, index + 1)
        _, end = decoder.raw_decode(text, start)
        if key == name:
            return text[start:end]
        index = _skip(text, end)
        if index < len(text) and text[index] == ",":
            index = _skip(text, index + 1)
    return None


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def verify_webhook_signature(sim: PayPalSimulator, raw: bytes) -> Answer:
    """POST /v1/notifications/verify-webhook-signature: the event must be the bytes PayPal
    sent, and the webhook one of this app's."""
    try:
        text = raw.decode("utf-8")
        fields = json.loads(text)
        event_text = raw_member(text, "webhook_event")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(
            400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed."
        ) from None
    names = (
        "auth_algo",
        "cert_url",
        "transmission_id",
        "transmission_sig",
        "transmission_time",
        "webhook_id",
    )
    for name in names:
        if not isinstance(fields.get(name), str) or not fields[name]:
            raise ApiError(400, "MISSING_REQUIRED_PARAMETER", f"{name} is required.", field=name)
    if event_text is None or not isinstance(fields.get("webhook_event"), dict):
        raise ApiError(
            400, "MISSING_REQUIRED_PARAMETER", "webhook_event is required.", field="webhook_event"
        )
    genuine = (
        fields["cert_url"] == sim.cert_url
        and fields["auth_algo"] == crypto.AUTH_ALGO
        and fields["webhook_id"] in sim.webhooks
        and crypto.verify(
            crypto.message(
                fields["transmission_id"],
                fields["transmission_time"],
                fields["webhook_id"],
                event_text.encode("utf-8"),
            ),
            fields["transmission_sig"],
            sim.certificate,
        )
    )
    return 200, {"verification_status": "SUCCESS" if genuine else "FAILURE"}
