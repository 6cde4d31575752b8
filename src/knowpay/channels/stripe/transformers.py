"""Stripe wire ↔ knowpay DTOs: Money ↔ Stripe's integer amounts (zero-decimal and special
currencies), PaymentIntent and Refund statuses ↔ ChannelStatus, events ↔ Notification,
balance transactions ↔ BillLine, and the `{"received": true}` answer (PROTOCOLS.md §4).

Units. knowpay's Money counts ISO 4217 minor units (kit/money.py, from CLDR). Stripe counts
its own way (https://docs.stripe.com/currencies): two decimals unless listed otherwise;
zero-decimal currencies (JPY, KRW, VND, CLP …) as whole units; three-decimal ones (BHD, JOD,
KWD, OMR, TND) in thousandths whose last digit must be 0; and special cases kept for
backwards compatibility: ISK and UGX are whole-unit currencies that Stripe still writes
with two decimals (5 ISK is 500, always a multiple of 100); HUF and TWD are charged with
two decimals (their zero-decimal rule is for payouts only). Conversion happens here and
only here; an amount Stripe cannot represent is refused (ChannelDeclined) before any call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from knowpay.channels.errors import ChannelDeclined, ProtocolError
from knowpay.channels.types import (
    BillLine,
    ChannelStatus,
    Notification,
    NotificationAck,
    PaymentQueryResult,
    RefundResult,
)
from knowpay.kit.money import Money, MoneyError, currency_exponent, normalize_currency

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF",
     "XOF", "XPF"}
)  # fmt: skip
"""Charged in whole units: ¥500 is `500`."""
WHOLE_UNITS_WRITTEN_WITH_TWO_DECIMALS = frozenset({"ISK", "UGX"})
"""Whole units only, written with two decimals for backwards compatibility: 5 ISK is `500`."""
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
"""Thousandths, rounded to tens for Stripe's partners: 5.120 KWD is `5120`, never `5124`."""
MAX_AMOUNT = 99_999_999
"""Stripe's largest amount in any currency (eight digits of its units)."""

# Stripe's documented minimum charges, in Stripe's units. KRW and CNY are not settlement
# currencies there (the minimum is the equivalent of the settlement currency's, USD 0.50):
# these two are that equivalent, rounded up, and Stripe's answer stays the judge.
MIN_AMOUNT: Mapping[str, int] = MappingProxyType(
    {
        "USD": 50, "EUR": 50, "GBP": 30, "JPY": 50, "HKD": 400, "SGD": 50, "AUD": 50,
        "CAD": 50, "CHF": 50, "NZD": 50, "DKK": 250, "NOK": 300, "SEK": 300, "PLN": 200,
        "CZK": 1500, "HUF": 17500, "RON": 200, "BGN": 100, "AED": 200, "INR": 50, "MXN": 1000,
        "BRL": 50, "MYR": 200, "THB": 1000, "KRW": 1000, "CNY": 400,
    }
)  # fmt: skip

INTENT_STATUS: Mapping[str, ChannelStatus] = MappingProxyType(
    {"succeeded": ChannelStatus.SUCCEEDED, "canceled": ChannelStatus.CLOSED}
)
"""Only `succeeded` and `canceled` are final. `requires_payment_method` (also after a failed
attempt, with `last_payment_error`), `requires_confirmation`, `requires_action`,
`processing` and `requires_capture` all leave the PaymentIntent payable: pending."""
REFUND_STATUS: Mapping[str, ChannelStatus] = MappingProxyType(
    {
        "succeeded": ChannelStatus.SUCCEEDED,
        "failed": ChannelStatus.FAILED,
        "canceled": ChannelStatus.FAILED,
        "pending": ChannelStatus.PENDING,
        "requires_action": ChannelStatus.PENDING,
    }
)

PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.partially_funded",
    }
)
REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)

# knowpay's refund reasons → Stripe's enum; `fraudulent` is never sent on our own (it blocks
# the card in Radar), and a reason with no match is left out.
_REFUND_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "duplicate_purchase": "duplicate",
        "accidental_purchase": "requested_by_customer",
        "not_as_described": "requested_by_customer",
        "quality_issue": "requested_by_customer",
        "technical_problem": "requested_by_customer",
        "no_longer_needed": "requested_by_customer",
    }
)
DESCRIPTION_MAX_CHARS = 1000

ACK_RECEIVED = b'{"received": true}'
ACK_REFUSED = b'{"received": false}'


# Units -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StripeUnits:
    """How Stripe writes a currency's amounts."""

    digits: int
    """Decimal digits of Stripe's integer amount."""
    step: int
    """Stripe's amounts are multiples of this."""


def stripe_units(currency: str) -> StripeUnits:
    """Stripe's unit for a currency (https://docs.stripe.com/currencies)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return StripeUnits(0, 1)
    if code in WHOLE_UNITS_WRITTEN_WITH_TWO_DECIMALS:
        return StripeUnits(2, 100)
    if code in THREE_DECIMAL:
        return StripeUnits(3, 10)
    return StripeUnits(2, 1)


def _pow10(digits: int) -> int:
    return int(10**digits)


def to_stripe_amount(amount: Money) -> int:
    """Money → Stripe's integer amount; ChannelDeclined when Stripe cannot charge it."""
    units = stripe_units(amount.currency)
    exponent = currency_exponent(amount.currency)
    if units.digits >= exponent:
        value = amount.amount_minor * _pow10(units.digits - exponent)
    else:
        factor = _pow10(exponent - units.digits)
        if amount.amount_minor % factor:
            raise ChannelDeclined(
                "amount_not_representable", f"Stripe charges {amount.currency} in whole units"
            )
        value = amount.amount_minor // factor
    if value % units.step:
        raise ChannelDeclined(
            "amount_not_representable",
            f"Stripe needs {amount.currency} amounts in steps of {units.step} of its units; "
            f"{amount} is not",
        )
    if value <= 0:
        raise ChannelDeclined("amount_too_small", f"{amount} is not a positive amount")
    if value > MAX_AMOUNT:
        raise ChannelDeclined("amount_too_large", f"{amount} is above Stripe's largest amount")
    return value


def from_stripe_amount(value: Any, currency: Any, field: str = "amount") -> Money:
    """Stripe's integer amount and lower-case currency → Money, exactly (ProtocolError else)."""
    if isinstance(value, bool) or not isinstance(value, int) or not isinstance(currency, str):
        raise ProtocolError(f"{field} {value!r} {currency!r} is not a Stripe amount")
    try:
        code = normalize_currency(currency)
        exponent = currency_exponent(code)
    except MoneyError as exc:
        raise ProtocolError(f"{field}: {exc}") from exc
    units = stripe_units(code)
    if units.digits >= exponent:
        factor = _pow10(units.digits - exponent)
        if value % factor:
            raise ProtocolError(f"{field} {value} is not a whole number of {code} minor units")
        return Money(value // factor, code)
    return Money(value * _pow10(exponent - units.digits), code)


def _minor(value: int, currency: str, *, round_up: bool) -> int:
    """Stripe's units → knowpay's minor units, rounded the safe way for a limit."""
    units = stripe_units(currency)
    exponent = currency_exponent(currency)
    if units.digits >= exponent:
        factor = _pow10(units.digits - exponent)
        return -(-value // factor) if round_up else value // factor
    return value * _pow10(exponent - units.digits)


def amount_limits(currencies: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(minimum, maximum) charge per currency in knowpay's minor units."""
    minimum: dict[str, int] = {}
    maximum: dict[str, int] = {}
    for currency in currencies:
        floor = max(MIN_AMOUNT.get(currency, 1), stripe_units(currency).step)
        minimum[currency] = max(_minor(floor, currency, round_up=True), 1)
        maximum[currency] = _minor(MAX_AMOUNT, currency, round_up=False)
    return minimum, maximum


# Statuses and objects ----------------------------------------------------------------------


def intent_status(text: Any) -> ChannelStatus:
    """A PaymentIntent status; anything not final (or unknown) is pending."""
    return INTENT_STATUS.get(text if isinstance(text, str) else "", ChannelStatus.PENDING)


def refund_status(text: Any) -> ChannelStatus:
    """A Refund status; an unknown one is pending."""
    return REFUND_STATUS.get(text if isinstance(text, str) else "", ChannelStatus.PENDING)


def refund_reason(reason: str) -> str | None:
    """Stripe's `reason` for a knowpay refund reason, or None to leave it out."""
    return _REFUND_REASONS.get(reason)


def description(subject: str) -> str:
    return " ".join(subject.split())[:DESCRIPTION_MAX_CHARS] or "-"


def metadata(obj: Mapping[str, Any], key: str) -> str | None:
    data = obj.get("metadata")
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) and value else None


def object_id(obj: Mapping[str, Any], prefix: str) -> str:
    value = obj.get("id")
    if not isinstance(value, str) or not value.startswith(prefix):
        raise ProtocolError(f"not a Stripe {prefix}… object: id {value!r}")
    return value


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:  # beyond what a datetime can hold
        raise ProtocolError(f"{value} is not a Unix time") from exc


def intent_amount(intent: Mapping[str, Any]) -> Money:
    """What a PaymentIntent charged when it succeeded (amount_received), else its amount."""
    field = "amount_received" if intent.get("status") == "succeeded" else "amount"
    return from_stripe_amount(intent.get(field), intent.get("currency"), field)


def check_intent(intent: Mapping[str, Any], out_trade_no: str, amount: Money | None) -> None:
    """An answer about another trade, or for other money, is no answer to our question."""
    if intent.get("object") != "payment_intent":
        raise ProtocolError(f"expected a payment_intent, got {intent.get('object')!r}")
    object_id(intent, "pi_")
    named = metadata(intent, "out_trade_no")
    if named != out_trade_no:
        raise ProtocolError(f"asked about {out_trade_no}, Stripe answered about {named}")
    if amount is not None:
        charged = from_stripe_amount(intent.get("amount"), intent.get("currency"))
        if charged != amount:
            raise ProtocolError(f"asked for {amount}, Stripe's PaymentIntent is for {charged}")


def query_result(intent: Mapping[str, Any]) -> PaymentQueryResult:
    """A PaymentIntent (latest_charge expanded or not) as the core reads a trade."""
    status = intent_status(intent.get("status"))
    paid_at = None
    charge = intent.get("latest_charge")
    if status is ChannelStatus.SUCCEEDED and isinstance(charge, Mapping):
        paid_at = _timestamp(charge.get("created"))
    error = intent.get("last_payment_error")
    failure_code = failure_message = None
    if isinstance(error, Mapping) and status is ChannelStatus.PENDING:
        # A failed attempt: the PaymentIntent is payable again, so this is news, not an end.
        code = error.get("decline_code") or error.get("code") or error.get("type")
        failure_code = str(code) if code else None
        failure_message = str(error.get("message") or "") or None
    return PaymentQueryResult(
        status=status,
        gateway_trade_no=object_id(intent, "pi_"),
        amount=intent_amount(intent),
        paid_at=paid_at,
        failure_code=failure_code,
        failure_message=failure_message,
    )


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    status = refund_status(refund.get("status"))
    reason = refund.get("failure_reason")
    failed = status is ChannelStatus.FAILED
    return RefundResult(
        status=status,
        gateway_refund_no=object_id(refund, "re_"),
        failure_code=(str(reason) if reason else f"refund_{refund.get('status')}")
        if failed
        else None,
        failure_message=f"Stripe's refund is {refund.get('status')}" if failed else None,
    )


def check_refund(refund: Mapping[str, Any], out_refund_no: str) -> None:
    if refund.get("object") != "refund":
        raise ProtocolError(f"expected a refund, got {refund.get('object')!r}")
    named = metadata(refund, "out_refund_no")
    if named != out_refund_no:
        raise ProtocolError(f"asked about refund {out_refund_no}, Stripe answered about {named}")


# Events ------------------------------------------------------------------------------------


def notification(event: Mapping[str, Any]) -> Notification:
    """A verified event, reduced to what the core needs.

    PaymentIntent events say the PaymentIntent's status (a failed attempt,
    `payment_intent.payment_failed`, leaves it `requires_payment_method`: pending, since the
    payer may try another card); refund events a refund's. Any other event (charge.*,
    customer.*, payouts …) becomes a pending payment note that changes nothing, so that it
    is stored once and acknowledged with a 2xx instead of being retried for days."""
    event_id = event.get("id")
    event_type = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if event.get("object") != "event" or not isinstance(event_id, str) or not event_id:
        raise ProtocolError("not a Stripe event")
    if not isinstance(event_type, str) or not isinstance(obj, Mapping):
        raise ProtocolError(f"event {event_id} has no type or no data.object")
    out_trade_no = metadata(obj, "out_trade_no") or ""
    if event_type in PAYMENT_INTENT_EVENTS:
        if obj.get("object") != "payment_intent":
            raise ProtocolError(f"{event_type} carries a {obj.get('object')!r}")
        status = intent_status(obj.get("status"))
        return Notification(
            kind="payment",
            external_id=event_id,
            out_trade_no=out_trade_no,
            status=status,
            gateway_trade_no=object_id(obj, "pi_"),
            amount=intent_amount(obj),
            paid_at=_timestamp(event.get("created")) if status is ChannelStatus.SUCCEEDED else None,
        )
    if event_type in REFUND_EVENTS:
        if obj.get("object") != "refund":
            raise ProtocolError(f"{event_type} carries a {obj.get('object')!r}")
        intent = obj.get("payment_intent")
        result = refund_result(obj)
        return Notification(
            kind="refund",
            external_id=event_id,
            out_trade_no=out_trade_no,
            status=result.status,
            gateway_trade_no=intent if isinstance(intent, str) else None,
            amount=from_stripe_amount(obj.get("amount"), obj.get("currency")),
            out_refund_no=metadata(obj, "out_refund_no"),
            gateway_refund_no=result.gateway_refund_no,
            failure_code=result.failure_code,
            failure_message=result.failure_message,
        )
    return Notification(
        kind="payment",
        external_id=event_id,
        out_trade_no=out_trade_no,
        status=ChannelStatus.PENDING,
    )


def ack(accepted: bool) -> NotificationAck:
    """Stripe stops retrying on any 2xx; a 400 makes it retry (live mode: for up to 3 days)."""
    if accepted:
        return NotificationAck(200, ACK_RECEIVED, "application/json")
    return NotificationAck(400, ACK_REFUSED, "application/json")


# Bills -------------------------------------------------------------------------------------

_BILL_KINDS: Mapping[str, Literal["payment", "refund"]] = MappingProxyType(
    {"charge": "payment", "payment": "payment", "refund": "refund", "payment_refund": "refund"}
)


def bill_line(transaction: Mapping[str, Any]) -> BillLine | None:
    """A balance transaction as a bill line; None for fees, payouts, adjustments …

    With `source` expanded the line carries the charge's or refund's own amount and currency
    (what the payer saw), not the settled amount, which may have been converted."""
    kind = _BILL_KINDS.get(str(transaction.get("type")))
    if kind is None:
        return None
    occurred_at = _timestamp(transaction.get("created"))
    if occurred_at is None:
        raise ProtocolError(f"balance transaction {transaction.get('id')} has no created time")
    source = transaction.get("source")
    if isinstance(source, Mapping):
        intent = source.get("payment_intent")
        gateway_trade_no = intent if isinstance(intent, str) else str(source.get("id") or "")
        amount = from_stripe_amount(source.get("amount"), source.get("currency"))
        out_trade_no = metadata(source, "out_trade_no") or ""
    else:
        gateway_trade_no = str(source or "")
        settled = from_stripe_amount(transaction.get("amount"), transaction.get("currency"))
        amount = Money(abs(settled.amount_minor), settled.currency)
        out_trade_no = ""
    return BillLine(
        out_trade_no=out_trade_no,
        gateway_trade_no=gateway_trade_no,
        amount=amount,
        kind=kind,
        occurred_at=occurred_at,
    )
