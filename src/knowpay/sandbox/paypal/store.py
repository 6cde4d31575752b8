"""The simulated PayPal's books: orders, their captures and refunds, in memory, and how
PayPal writes each of them as JSON. Amounts are Decimals in the currency's units, as PayPal
speaks them (no decimals for HUF, JPY, TWD; two for the others)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})
_CODES = (
    ("AUD", "BRL", "CAD", "CNY", "CZK", "DKK", "EUR", "HKD", "HUF", "ILS", "JPY", "MYR"),
    ("MXN", "TWD", "NZD", "NOK", "PHP", "PLN", "GBP", "SGD", "SEK", "CHF", "THB", "USD"),
)
SUPPORTED_CURRENCIES = frozenset(code for row in _CODES for code in row)
"""PayPal's REST currency codes."""
MAX_VALUE = Decimal("1000000")
FEE_RATE, FEE_FIXED = Decimal("0.0349"), Decimal("0.49")
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"

ERROR_NAMES = {
    400: (
        "INVALID_REQUEST",
        "Request is not well-formed, syntactically incorrect, or violates schema.",
    ),
    401: (
        "AUTHENTICATION_FAILURE",
        "Authentication failed due to invalid authentication credentials or a missing "
        "Authorization header.",
    ),
    403: ("NOT_AUTHORIZED", "Authorization failed due to insufficient permissions."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed "
        "business validation.",
    ),
}


def paypal_id(length: int = 17) -> str:
    """An id like PayPal's order, capture and refund ids (`5O190127TN364715T`)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error answer as PayPal writes it: name, message, debug_id, details, links."""

    def __init__(
        self,
        status: int,
        issue: str,
        description: str,
        *,
        field: str | None = None,
        value: str | None = None,
        location: str = "body",
    ) -> None:
        super().__init__(f"{status} {issue}: {description}")
        self.status = status
        self.issue = issue
        name, message = ERROR_NAMES.get(status, ("INTERNAL_SERVER_ERROR", "An internal error."))
        detail: dict[str, Any] = {"issue": issue, "description": description}
        if field is not None:
            detail = {
                "field": field,
                **({"value": value} if value else {}),
                "location": location,
                **detail,
            }
        self.body: dict[str, Any] = {
            "name": name,
            "details": [detail],
            "message": message,
            "debug_id": secrets.token_hex(7),
            "links": [
                {
                    "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue}",
                    "rel": "information_link",
                    "method": "GET",
                }
            ],
        }


def not_found(kind: str, resource_id: str) -> ApiError:
    return ApiError(
        404,
        "INVALID_RESOURCE_ID",
        "Specified resource ID does not exist. Please check the resource ID and try again.",
        field=f"{kind}_id",
        value=resource_id,
        location="path",
    )


def places(currency: str) -> int:
    return 0 if currency in NO_DECIMALS else 2


def fmt(currency: str, value: Decimal) -> str:
    return f"{value:.{places(currency)}f}"


def money(currency: str, value: Decimal) -> dict[str, str]:
    return {"currency_code": currency, "value": fmt(currency, value)}


def parse_money(data: Any, path: str) -> tuple[str, Decimal]:
    """A request's `{currency_code, value}`, checked as PayPal checks it."""
    if not isinstance(data, dict):
        raise ApiError(
            400, "MISSING_REQUIRED_PARAMETER", "A required field is missing.", field=path
        )
    currency, value = data.get("currency_code"), data.get("value")
    if not isinstance(currency, str) or not isinstance(value, str):
        raise ApiError(
            400, "MISSING_REQUIRED_PARAMETER", "A required field is missing.", field=f"{path}/value"
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise ApiError(
            422,
            "CURRENCY_NOT_SUPPORTED",
            "Currency code is not currently supported.",
            field=f"{path}/currency_code",
            value=currency,
        )
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0 or amount > MAX_VALUE or "e" in value.lower():
        raise ApiError(
            422,
            "INVALID_PARAMETER_VALUE",
            "The value of a field is invalid.",
            field=f"{path}/value",
            value=value,
        )
    decimals = len(value.partition(".")[2])
    if decimals > places(currency) or ("." in value and places(currency) == 0):
        raise ApiError(
            422,
            "DECIMAL_PRECISION",
            "If the currency supports decimals, only two decimal place precision is supported.",
            field=f"{path}/value",
            value=value,
        )
    return currency, amount


def fee(currency: str, gross: Decimal) -> Decimal:
    quantum = Decimal(1).scaleb(-places(currency))
    return (gross * FEE_RATE + FEE_FIXED).quantize(quantum, rounding=ROUND_HALF_UP)


@dataclass
class Refund:
    id: str
    capture_id: str
    order_id: str
    status: str
    currency: str
    value: Decimal
    invoice_id: str | None
    custom_id: str | None
    note_to_payer: str | None
    created_at: datetime
    updated_at: datetime


@dataclass
class Capture:
    id: str
    order_id: str
    status: str
    currency: str
    value: Decimal
    invoice_id: str | None
    custom_id: str | None
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    refunds: list[Refund] = field(default_factory=list)

    @property
    def refunded(self) -> Decimal:
        return sum(
            (r.value for r in self.refunds if r.status in ("COMPLETED", "PENDING")), Decimal(0)
        )


@dataclass
class Order:
    id: str
    status: str
    currency: str
    value: Decimal
    reference_id: str
    invoice_id: str | None
    custom_id: str | None
    description: str | None
    return_url: str | None
    cancel_url: str | None
    approve_rel: str
    created_at: datetime
    updated_at: datetime
    payer_id: str | None = None
    captures: list[Capture] = field(default_factory=list)


class Book:
    """Every order, capture and refund, and the answers kept for PayPal-Request-Id replays."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.orders: dict[str, Order] = {}
        self.captures: dict[str, Capture] = {}
        self.refunds: dict[str, Refund] = {}
        self.replays: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}

    def order(self, order_id: str) -> Order:
        found = self.orders.get(order_id)
        if found is None:
            raise not_found("order", order_id)
        return found

    def capture(self, capture_id: str) -> Capture:
        found = self.captures.get(capture_id)
        if found is None:
            raise not_found("capture", capture_id)
        return found

    def refund(self, refund_id: str) -> Refund:
        found = self.refunds.get(refund_id)
        if found is None:
            raise not_found("refund", refund_id)
        return found

    def by_invoice(self, invoice_id: str) -> Order | None:
        return next((o for o in self.orders.values() if o.invoice_id == invoice_id), None)


class Writer:
    """PayPal's JSON for the simulator's records, with HATEOAS links under `base_url`."""

    def __init__(self, base_url: str, merchant_id: str, merchant_email: str) -> None:
        self.base_url = base_url
        self.merchant_id = merchant_id
        self.merchant_email = merchant_email

    def approve_url(self, order: Order) -> str:
        return f"{self.base_url}/checkoutnow?token={order.id}"

    def order(self, order: Order) -> dict[str, Any]:
        unit: dict[str, Any] = {
            "reference_id": order.reference_id,
            "amount": money(order.currency, order.value),
            "payee": {"email_address": self.merchant_email, "merchant_id": self.merchant_id},
        }
        for key in ("description", "custom_id", "invoice_id"):
            if getattr(order, key):
                unit[key] = getattr(order, key)
        if order.captures:
            unit["payments"] = {
                "captures": [self.capture(c, related=False) for c in order.captures]
            }
        self_link = f"{self.base_url}/v2/checkout/orders/{order.id}"
        links = [{"href": self_link, "rel": "self", "method": "GET"}]
        if order.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
            links.append(
                {"href": self.approve_url(order), "rel": order.approve_rel, "method": "GET"}
            )
        if order.status in ("CREATED", "APPROVED"):
            links.append({"href": self_link, "rel": "update", "method": "PATCH"})
            links.append({"href": f"{self_link}/capture", "rel": "capture", "method": "POST"})
        data: dict[str, Any] = {
            "id": order.id,
            "intent": "CAPTURE",
            "status": order.status,
            "purchase_units": [unit],
            "create_time": stamp(order.created_at),
            "update_time": stamp(order.updated_at),
            "links": links,
        }
        if order.payer_id:
            payer = {
                "name": {"given_name": "Sandbox", "surname": "Buyer"},
                "email_address": f"buyer-{order.payer_id.lower()}@sandbox.example",
                "payer_id": order.payer_id,
                "address": {"country_code": "US"},
            }
            data["payer"] = payer
            data["payment_source"] = {
                "paypal": {
                    "email_address": payer["email_address"],
                    "account_id": order.payer_id,
                    "account_status": "VERIFIED",
                    "name": payer["name"],
                    "address": payer["address"],
                }
            }
        return data

    def capture(self, capture: Capture, *, related: bool = True) -> dict[str, Any]:
        gross = capture.value
        charge = fee(capture.currency, gross)
        data: dict[str, Any] = {
            "id": capture.id,
            "status": capture.status,
            "amount": money(capture.currency, gross),
            "final_capture": True,
            "seller_protection": {
                "status": "ELIGIBLE",
                "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
            },
            "seller_receivable_breakdown": {
                "gross_amount": money(capture.currency, gross),
                "paypal_fee": money(capture.currency, charge),
                "net_amount": money(capture.currency, gross - charge),
            },
            "links": [
                {
                    "href": f"{self.base_url}/v2/payments/captures/{capture.id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"{self.base_url}/v2/payments/captures/{capture.id}/refund",
                    "rel": "refund",
                    "method": "POST",
                },
                {
                    "href": f"{self.base_url}/v2/checkout/orders/{capture.order_id}",
                    "rel": "up",
                    "method": "GET",
                },
            ],
            "create_time": stamp(capture.created_at),
            "update_time": stamp(capture.updated_at),
        }
        if capture.reason:
            data["status_details"] = {"reason": capture.reason}
        for key in ("invoice_id", "custom_id"):
            if getattr(capture, key):
                data[key] = getattr(capture, key)
        if related:
            data["supplementary_data"] = {"related_ids": {"order_id": capture.order_id}}
            data["payee"] = {"email_address": self.merchant_email, "merchant_id": self.merchant_id}
        return data

    def refund(self, refund: Refund) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": refund.id,
            "amount": money(refund.currency, refund.value),
            "status": refund.status,
            "seller_payable_breakdown": {
                "gross_amount": money(refund.currency, refund.value),
                "paypal_fee": money(refund.currency, Decimal(0)),
                "net_amount": money(refund.currency, refund.value),
            },
            "links": [
                {
                    "href": f"{self.base_url}/v2/payments/refunds/{refund.id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"{self.base_url}/v2/payments/captures/{refund.capture_id}",
                    "rel": "up",
                    "method": "GET",
                },
            ],
            "create_time": stamp(refund.created_at),
            "update_time": stamp(refund.updated_at),
        }
        for key in ("invoice_id", "custom_id", "note_to_payer"):
            if getattr(refund, key):
                data[key] = getattr(refund, key)
        if refund.status == "PENDING":
            data["status_details"] = {"reason": "ECHECK"}
        return data
