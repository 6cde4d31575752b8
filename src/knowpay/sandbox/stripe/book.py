"""The simulated account's objects, with Stripe's field names and status rules: PaymentIntents,
Charges, Refunds, BalanceTransactions and Events. Every change says which events it caused;
the simulator sends them. Amounts are Stripe's integers (see money.py)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from knowpay.sandbox.stripe import money
from knowpay.sandbox.stripe.errors import StripeError, invalid, missing, unexpected_state
from knowpay.sandbox.stripe.signing import random_token

Obj = dict[str, Any]
Emit = Callable[[str, Obj], None]
"""Called with (event type, the object as it is now) for each event a change causes."""

CANCELABLE = frozenset(
    {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action",
     "processing"}
)  # fmt: skip
CONFIRMABLE = frozenset({"requires_payment_method", "requires_confirmation"})
CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
PREFIXES = {
    "pi_": "payment_intent",
    "ch_": "charge",
    "re_": "refund",
    "txn_": "balance_transaction",
    "evt_": "event",
    "pm_": "payment_method",
}


@dataclass(frozen=True)
class Card:
    """A test card's outcome (https://docs.stripe.com/testing)."""

    brand: str
    last4: str
    decline: tuple[str, str, str] | None = None
    """(code, decline_code, message) when declined."""


_DECLINED = "Your card was declined."
TEST_CARDS: dict[str, Card] = {
    "4242424242424242": Card("visa", "4242"),
    "4000056655665556": Card("visa", "5556"),
    "5555555555554444": Card("mastercard", "4444"),
    "4000000000000002": Card("visa", "0002", ("card_declined", "generic_decline", _DECLINED)),
    "4000000000009995": Card(
        "visa", "9995", ("card_declined", "insufficient_funds", "Your card has insufficient funds.")
    ),
    "4000000000009987": Card("visa", "9987", ("card_declined", "lost_card", _DECLINED)),
    "4000000000000069": Card(
        "visa", "0069", ("expired_card", "expired_card", "Your card has expired.")
    ),
    "4000000000000127": Card(
        "visa",
        "0127",
        ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    ),
    "4000000000000119": Card(
        "visa",
        "0119",
        ("processing_error", "processing_error", "An error occurred while processing your card."),
    ),
}
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
}


def new_id(prefix: str) -> str:
    return prefix + random_token(24)


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, digit in enumerate(int(d) for d in reversed(number)):
        if index % 2:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return total % 10 == 0


def card_for(number: str) -> Card:
    """The test card behind a number; a real-looking one is declined as in test mode."""
    card = TEST_CARDS.get(number)
    if card is not None:
        return card
    if not luhn_ok(number):
        raise StripeError(
            402,
            "Your card number is incorrect.",
            type="card_error",
            code="incorrect_number",
            param="number",
        )
    return Card(
        "visa",
        number[-4:],
        (
            "card_declined",
            "test_mode_live_card",
            "Your card was declined. Your request was in test mode, but used a non test card.",
        ),
    )


class StripeBook:
    """Every object of the simulated account, under one lock."""

    def __init__(self, livemode: bool = False) -> None:
        self.lock = threading.RLock()
        self.livemode = livemode
        self._objects: dict[str, Obj] = {}
        self._order: dict[str, list[str]] = {kind: [] for kind in PREFIXES.values()}

    # Storage -------------------------------------------------------------------------------

    def _add(self, obj: Obj) -> Obj:
        self._objects[obj["id"]] = obj
        self._order[obj["object"]].append(obj["id"])
        return obj

    def get(self, object_id: str, kind: str | None = None) -> Obj | None:
        with self.lock:
            obj = self._objects.get(object_id)
            if obj is None or (kind is not None and obj["object"] != kind):
                return None
            return obj

    def require(self, object_id: str, kind: str, param: str = "id") -> Obj:
        obj = self.get(object_id, kind)
        if obj is None:
            raise missing(kind, object_id, param)
        return obj

    def all(self, kind: str) -> list[Obj]:
        """Objects of a kind, newest first (Stripe's list order)."""
        with self.lock:
            return [self._objects[object_id] for object_id in reversed(self._order[kind])]

    def snapshot(self, obj: Obj) -> Obj:
        with self.lock:
            return copy.deepcopy(obj)

    def add_event(self, event: Obj) -> None:
        with self.lock:
            self._add(event)

    # PaymentIntents ------------------------------------------------------------------------

    def create_intent(self, params: Mapping[str, Any], emit: Emit) -> Obj:
        currency = _currency(params.get("currency"))
        amount = _amount(params.get("amount"), currency)
        automatic = params.get("automatic_payment_methods")
        types = params.get("payment_method_types")
        if types is not None and (not isinstance(types, list) or types != ["card"]):
            raise invalid(
                "This simulator accepts only payment_method_types[]=card.", "payment_method_types"
            )
        capture = params.get("capture_method", "automatic_async")
        if capture not in ("automatic", "automatic_async"):
            raise invalid("This simulator captures automatically only.", "capture_method")
        intent_id = new_id("pi_")
        now = int(time.time())
        with self.lock:
            intent = self._add(
                {
                    "id": intent_id,
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_capturable": 0,
                    "amount_received": 0,
                    "automatic_payment_methods": {"allow_redirects": "always", "enabled": True}
                    if isinstance(automatic, dict) and _bool(automatic.get("enabled"), "enabled")
                    else None,
                    "canceled_at": None,
                    "cancellation_reason": None,
                    "capture_method": capture,
                    "client_secret": f"{intent_id}_secret_{random_token(25)}",
                    "confirmation_method": "automatic",
                    "created": now,
                    "currency": currency,
                    "customer": None,
                    "description": _text(params.get("description"), "description", 1000),
                    "last_payment_error": None,
                    "latest_charge": None,
                    "livemode": self.livemode,
                    "metadata": _metadata(params.get("metadata")),
                    "next_action": None,
                    "payment_method": None,
                    "payment_method_types": ["card"],
                    "receipt_email": _text(params.get("receipt_email"), "receipt_email", 800),
                    "status": "requires_payment_method",
                }
            )
            emit("payment_intent.created", intent)
            return intent

    def confirm(self, intent: Obj, number: str, emit: Emit) -> Obj:
        """Charge a test card: the PaymentIntent succeeds, or goes back to
        requires_payment_method with last_payment_error (StripeError 402 carries it)."""
        with self.lock:
            if intent["status"] not in CONFIRMABLE:
                raise unexpected_state(
                    "You cannot confirm this PaymentIntent because it has a status of "
                    f"{intent['status']}.",
                    payment_intent=copy.deepcopy(intent),
                )
            card = card_for(number)
            method = self._payment_method(card)
            charge = self._charge(intent, method, card)
            intent["payment_method"] = method["id"]
            intent["latest_charge"] = charge["id"]
            if card.decline is None:
                intent.update(
                    status="succeeded", amount_received=intent["amount"], last_payment_error=None
                )
                emit("charge.succeeded", charge)
                emit("payment_intent.succeeded", intent)
                return intent
            code, decline_code, message = card.decline
            error = {
                "charge": charge["id"],
                "code": code,
                "decline_code": decline_code,
                "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
                "message": message,
                "payment_method": method,
                "type": "card_error",
            }
            intent.update(status="requires_payment_method", last_payment_error=error)
            emit("charge.failed", charge)
            emit("payment_intent.payment_failed", intent)
            raise StripeError(
                402,
                message,
                type="card_error",
                code=code,
                decline_code=decline_code,
                charge=charge["id"],
                payment_intent=copy.deepcopy(intent),
            )

    def _payment_method(self, card: Card) -> Obj:
        return self._add(
            {
                "id": new_id("pm_"),
                "object": "payment_method",
                "type": "card",
                "card": {"brand": card.brand, "last4": card.last4, "exp_month": 12,
                         "exp_year": 2034, "country": "US", "funding": "credit"},
                "created": int(time.time()),
                "livemode": self.livemode,
            }
        )  # fmt: skip

    def _charge(self, intent: Obj, method: Obj, card: Card) -> Obj:
        now = int(time.time())
        failure = card.decline
        paid = failure is None
        charge = self._add(
            {
                "id": new_id("ch_"),
                "object": "charge",
                "amount": intent["amount"],
                "amount_captured": intent["amount"] if paid else 0,
                "amount_refunded": 0,
                "balance_transaction": None,
                "captured": paid,
                "created": now,
                "currency": intent["currency"],
                "description": intent["description"],
                "failure_code": failure[0] if failure else None,
                "failure_message": failure[2] if failure else None,
                "livemode": self.livemode,
                "metadata": dict(intent["metadata"]),
                "outcome": {
                    "network_status": "approved_by_network" if paid else "declined_by_network",
                    "type": "authorized" if paid else "issuer_declined",
                    "seller_message": "Payment complete." if paid else "The bank declined.",
                    "risk_level": "normal",
                },
                "paid": paid,
                "payment_intent": intent["id"],
                "payment_method": method["id"],
                "payment_method_details": {"type": "card", "card": dict(method["card"])},
                "refunded": False,
                "status": "succeeded" if paid else "failed",
            }
        )
        if paid:
            fee = money.fee(charge["amount"], charge["currency"])
            charge["balance_transaction"] = self._transaction(
                charge["amount"], charge["currency"], fee, "charge", charge["id"], now
            )["id"]
        return charge

    def _transaction(
        self, amount: int, currency: str, fee: int, kind: str, source: str, now: int
    ) -> Obj:
        return self._add(
            {
                "id": new_id("txn_"),
                "object": "balance_transaction",
                "amount": amount,
                "available_on": now + 2 * 86400,
                "created": now,
                "currency": currency,
                "description": None,
                "fee": fee,
                "fee_details": [],
                "net": amount - fee,
                "reporting_category": kind,
                "source": source,
                "status": "pending",
                "type": kind,
            }
        )

    def cancel(self, intent: Obj, reason: Any, emit: Emit) -> Obj:
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise invalid(f"Invalid cancellation_reason: {reason}", "cancellation_reason")
        with self.lock:
            if intent["status"] not in CANCELABLE:
                raise unexpected_state(
                    "You cannot cancel this PaymentIntent because it has a status of "
                    f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                    f"may be canceled: {', '.join(sorted(CANCELABLE))}.",
                    payment_intent=copy.deepcopy(intent),
                )
            intent.update(
                status="canceled", canceled_at=int(time.time()), cancellation_reason=reason
            )
            emit("payment_intent.canceled", intent)
            return intent

    # Refunds -------------------------------------------------------------------------------

    def create_refund(self, params: Mapping[str, Any], pending: bool, emit: Emit) -> Obj:
        reason = params.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid(
                f"Invalid reason: must be one of {', '.join(sorted(REFUND_REASONS))}", "reason"
            )
        with self.lock:
            charge = self._refundable_charge(params)
            remaining = charge["amount_captured"] - charge["amount_refunded"]
            if remaining <= 0:
                raise invalid(
                    f"Charge {charge['id']} has already been refunded.",
                    code="charge_already_refunded",
                )
            raw = params.get("amount")
            amount = remaining if raw is None else _amount(raw, charge["currency"], minimum=1)
            if amount > remaining:
                raise invalid(
                    f"Refund amount ({money.display(amount, charge['currency'])}) is greater than "
                    f"unrefunded amount on charge ({money.display(remaining, charge['currency'])})",
                    "amount",
                    code="amount_too_large",
                )
            now = int(time.time())
            refund = self._add(
                {
                    "id": new_id("re_"),
                    "object": "refund",
                    "amount": amount,
                    "balance_transaction": None,
                    "charge": charge["id"],
                    "created": now,
                    "currency": charge["currency"],
                    "metadata": _metadata(params.get("metadata")),
                    "payment_intent": charge["payment_intent"],
                    "reason": reason,
                    "receipt_number": None,
                    "status": "pending" if pending else "succeeded",
                }
            )
            refund["balance_transaction"] = self._transaction(
                -amount, charge["currency"], 0, "refund", refund["id"], now
            )["id"]
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
            emit("refund.created", refund)
            if not pending:
                emit("charge.refunded", charge)
            return refund

    def _refundable_charge(self, params: Mapping[str, Any]) -> Obj:
        intent_id, charge_id = params.get("payment_intent"), params.get("charge")
        if not intent_id and not charge_id:
            raise invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge."
            )
        if charge_id:
            return self.require(str(charge_id), "charge", "charge")
        intent = self.require(str(intent_id), "payment_intent", "payment_intent")
        charge = self.get(intent["latest_charge"] or "", "charge")
        if intent["status"] != "succeeded" or charge is None or not charge["paid"]:
            raise invalid(
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                "payment_intent",
                code="charge_not_refundable",
            )
        return charge

    def settle_refund(self, refund_id: str, outcome: str, emit: Emit) -> None:
        """A pending refund ends: succeeded, or failed (its money goes back to the balance)."""
        with self.lock:
            refund = self.get(refund_id, "refund")
            if refund is None or refund["status"] != "pending":
                return
            charge = self.require(refund["charge"], "charge")
            refund["status"] = outcome
            if outcome == "failed":
                refund["failure_reason"] = "expired_or_canceled_card"
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
                self._transaction(
                    refund["amount"], refund["currency"], 0, "refund_failure", refund["id"],
                    int(time.time()),
                )  # fmt: skip
                emit("refund.failed", refund)
            else:
                emit("charge.refunded", charge)
            emit("refund.updated", refund)


# Parameters ----------------------------------------------------------------------------------


def _currency(value: Any) -> str:
    if value is None:
        raise StripeError(
            400, "Missing required param: currency.", code="parameter_missing", param="currency"
        )
    if not isinstance(value, str) or value not in money.SUPPORTED:
        raise invalid(
            f"Invalid currency: {value}. Stripe currently supports these currencies (lowercase): "
            f"{', '.join(sorted(money.SUPPORTED))}",
            "currency",
        )
    return value


def _amount(value: Any, currency: str, minimum: int | None = None) -> int:
    if value is None:
        raise StripeError(
            400, "Missing required param: amount.", code="parameter_missing", param="amount"
        )
    if not isinstance(value, str) or not value.isdigit():
        raise StripeError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param="amount"
        )
    amount = int(value)
    floor = money.MINIMUM.get(currency, 1) if minimum is None else minimum
    if amount < max(floor, 1):
        raise invalid(
            f"Amount must be at least {money.display(floor, currency)}",
            "amount",
            code="amount_too_small",
        )
    if amount > money.MAX_AMOUNT:
        raise invalid(
            f"Amount must be no more than {money.display(money.MAX_AMOUNT, currency)}",
            "amount",
            code="amount_too_large",
        )
    if amount % money.step(currency):
        raise invalid(
            f"Invalid amount. Amounts in {currency.upper()} must be evenly divisible by "
            f"{money.step(currency)}. See https://stripe.com/docs/currencies#special-cases",
            "amount",
            code="invalid_charge_amount_no_decimal_compatible",
        )
    return amount


def _metadata(value: Any) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid object", "metadata")
    if len(value) > 50:
        raise invalid("You can specify up to 50 keys in metadata.", "metadata")
    for key, item in value.items():
        if len(key) > 40 or not isinstance(item, str) or len(item) > 500:
            raise invalid(f"Invalid metadata[{key}]", f"metadata[{key}]")
    return {key: item for key, item in value.items() if item != ""}


def _text(value: Any, param: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise invalid(f"Invalid {param}: must be a string of at most {limit} characters", param)
    return value


def _bool(value: Any, param: str) -> bool:
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise invalid(f"Invalid boolean: {value}", param)
