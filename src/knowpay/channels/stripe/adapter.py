"""The Stripe channel (PaymentIntents): channel `stripe`, notifications at /notify/stripe.

Stripe names a trade by its PaymentIntent id (`pi_…`), which knowpay keeps as the payment's
gateway_trade_no; our out_trade_no travels in `metadata[out_trade_no]` (and a refund's
out_refund_no in its `metadata[out_refund_no]`), so that every object and event can be tied
back to ours. The payer confirms the PaymentIntent on a page of ours with Stripe.js (the
`client_secret` action); knowpay never sees a card.

Webhook endpoints are registered at Stripe (dashboard or API), not per request: the
notify_url of a request is not sent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import quote

from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelDeclined, ProtocolError
from knowpay.channels.stripe import bill, signing, transformers
from knowpay.channels.stripe.client import StripeClient, StripeDeclined
from knowpay.channels.types import (
    ALL_DEVICES,
    Bill,
    ChannelProfile,
    ChannelStatus,
    CreatePaymentRequest,
    CreatePaymentResult,
    Notification,
    NotificationAck,
    PaymentAction,
    PaymentQueryResult,
    RefundRequest,
    RefundResult,
)
from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings, StripeSettings
from knowpay.kit.jsontext import NotJson, parse_json
from knowpay.kit.money import MoneyError, normalize_currency

UNEXPECTED_STATE = "payment_intent_unexpected_state"
RESOURCE_MISSING = "resource_missing"
REFUND_PAGE_SIZE = 100


def idempotency_key(operation: str, number: str) -> str:
    """One key per logical call, derived from our own number, so that it survives restarts."""
    return f"knowpay:{operation}:{number}"


def _search_query(out_trade_no: str) -> str:
    escaped = out_trade_no.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['out_trade_no']:'{escaped}'"


class StripeChannel:
    """Stripe PaymentIntents behind the Channel interface."""

    name = "stripe"
    gateway = "stripe"

    def __init__(self, settings: StripeSettings, client: StripeClient, clock: Clock) -> None:
        if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
            raise ValueError("Stripe needs a webhook_secret to verify its webhooks")
        self._client = client
        self._clock = clock
        self._secrets = [settings.webhook_secret.get_secret_value()] + [
            secret.get_secret_value() for secret in settings.previous_webhook_secrets
        ]
        self._tolerance_s = settings.webhook_tolerance_s
        self._payer_page_url = settings.payer_page_url
        try:
            currencies = sorted({normalize_currency(code) for code in settings.currencies})
        except MoneyError as exc:
            raise ValueError(f"KNOWPAY_STRIPE__CURRENCIES: {exc}") from exc
        minimum, maximum = transformers.amount_limits(currencies)
        self.profile = ChannelProfile(
            currencies=frozenset(currencies),
            devices=ALL_DEVICES,
            countries=frozenset(code.upper() for code in settings.countries),
            min_amount=minimum,
            max_amount=maximum,
        )

    def close(self) -> None:
        """Close the gateway's HTTP connections (channels of one gateway share them)."""
        self._client.close()

    # Payments ----------------------------------------------------------------------------

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        params: dict[str, Any] = {
            "amount": transformers.to_stripe_amount(request.amount),
            "currency": request.amount.currency.lower(),
            "automatic_payment_methods": {"enabled": True},
            "description": transformers.description(request.subject),
            "metadata": {"out_trade_no": request.out_trade_no},
        }
        intent = self._client.post(
            "/v1/payment_intents",
            params,
            idempotency_key=idempotency_key("create", request.out_trade_no),
        )
        transformers.check_intent(intent, request.out_trade_no, request.amount)
        secret = intent.get("client_secret")
        intent_id = transformers.object_id(intent, "pi_")
        if not isinstance(secret, str) or not secret.startswith(f"{intent_id}_secret_"):
            raise ProtocolError("the PaymentIntent came without its client_secret")
        status = transformers.intent_status(intent.get("status"))
        url = None
        if self._payer_page_url:
            url = self._payer_page_url.format(
                id=intent_id,
                client_secret=secret,
                return_url=quote(request.return_url or "", safe=""),
            )
        return CreatePaymentResult(
            status=status,
            action=PaymentAction(type="client_secret", url=url, client_secret=secret),
            gateway_trade_no=intent_id,
            paid_amount=transformers.intent_amount(intent)
            if status is ChannelStatus.SUCCEEDED
            else None,
        )

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        try:
            intent = self._intent(out_trade_no, gateway_trade_no)
        except StripeDeclined as declined:
            if not _not_on_this_account(declined):
                raise
            # Nothing known here; a query closes nothing (the order's close does).
            return PaymentQueryResult(status=ChannelStatus.PENDING)
        if intent is None:
            # No PaymentIntent carries our number: nothing to say but "not paid so far".
            return PaymentQueryResult(status=ChannelStatus.PENDING)
        return transformers.query_result(intent)

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        intent_id = gateway_trade_no or self._find_intent_id(out_trade_no)
        if intent_id is None:
            # No PaymentIntent exists, and none can be paid once the order is closed here.
            return PaymentQueryResult(status=ChannelStatus.CLOSED)
        try:
            intent = self._client.post(
                f"/v1/payment_intents/{intent_id}/cancel",
                {"cancellation_reason": "abandoned"},
                idempotency_key=idempotency_key("cancel", out_trade_no),
            )
        except StripeDeclined as declined:
            if _not_on_this_account(declined):
                return PaymentQueryResult(status=ChannelStatus.CLOSED)
            if declined.code != UNEXPECTED_STATE:
                raise
            # Succeeded (or canceled) meanwhile: the PaymentIntent says which.
            result = self.query_payment(out_trade_no, gateway_trade_no=intent_id)
            if result.status in (ChannelStatus.SUCCEEDED, ChannelStatus.CLOSED):
                return result
            raise
        transformers.check_intent(intent, out_trade_no, None)
        return transformers.query_result(intent)

    def _intent(self, out_trade_no: str, intent_id: str | None) -> dict[str, Any] | None:
        """The PaymentIntent of a trade, its latest charge expanded (for the time paid)."""
        if intent_id is None:
            intent_id = self._find_intent_id(out_trade_no)
            if intent_id is None:
                return None
        intent = self._client.get(f"/v1/payment_intents/{intent_id}", {"expand": ["latest_charge"]})
        transformers.check_intent(intent, out_trade_no, None)
        return intent

    def _find_intent_id(self, out_trade_no: str) -> str | None:
        """Search by our number (when create's answer was lost). Stripe's search index lags
        by up to a minute, so "none" right after a create only means "none yet"."""
        page = self._client.get(
            "/v1/payment_intents/search", {"query": _search_query(out_trade_no), "limit": 10}
        )
        found = [item for item in _list(page, "search_result")
                 if transformers.metadata(item, "out_trade_no") == out_trade_no]  # fmt: skip
        if not found:
            return None
        # One create key per trade makes two PaymentIntents unlikely; a paid one wins.
        found.sort(key=lambda item: item.get("status") != "succeeded")
        return transformers.object_id(found[0], "pi_")

    # Refunds -----------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """Idempotent by out_refund_no (the Idempotency-Key): a retry cannot refund twice."""
        intent_id = request.gateway_trade_no or self._find_intent_id(request.out_trade_no)
        if intent_id is None:
            return RefundResult(
                status=ChannelStatus.FAILED,
                failure_code="resource_missing",
                failure_message=f"Stripe has no PaymentIntent for {request.out_trade_no}",
            )
        params: dict[str, Any] = {
            "payment_intent": intent_id,
            "amount": transformers.to_stripe_amount(request.amount),
            "reason": transformers.refund_reason(request.reason),
            "metadata": {
                "out_trade_no": request.out_trade_no,
                "out_refund_no": request.out_refund_no,
            },
        }
        try:
            refund = self._client.post(
                "/v1/refunds",
                params,
                idempotency_key=idempotency_key("refund", request.out_refund_no),
            )
        except ChannelDeclined as declined:
            return RefundResult(
                status=ChannelStatus.FAILED,
                failure_code=declined.code,
                failure_message=declined.message,
            )
        transformers.check_refund(refund, request.out_refund_no)
        refunded = transformers.from_stripe_amount(refund.get("amount"), refund.get("currency"))
        if refunded != request.amount:
            raise ProtocolError(f"asked to refund {request.amount}, Stripe refunds {refunded}")
        return transformers.refund_result(refund)

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        if gateway_refund_no:
            refund = self._client.get(f"/v1/refunds/{gateway_refund_no}")
            transformers.check_refund(refund, out_refund_no)
            return transformers.refund_result(refund)
        intent_id = gateway_trade_no or self._find_intent_id(out_trade_no)
        found = self._find_refund(intent_id, out_refund_no) if intent_id else None
        if found is None:
            # Not (yet) a refund at Stripe: still unknown; the core asks again later.
            return RefundResult(status=ChannelStatus.PENDING)
        return transformers.refund_result(found)

    def _find_refund(self, intent_id: str, out_refund_no: str) -> dict[str, Any] | None:
        params: dict[str, Any] = {"payment_intent": intent_id, "limit": REFUND_PAGE_SIZE}
        while True:
            page = self._client.get("/v1/refunds", params)
            refunds = _list(page, "list")
            for refund in refunds:
                if transformers.metadata(refund, "out_refund_no") == out_refund_no:
                    return refund
            if not page.get("has_more") or not refunds:
                return None
            params["starting_after"] = transformers.object_id(refunds[-1], "re_")

    # Notifications -----------------------------------------------------------------------

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        header = next(
            (value for key, value in headers.items() if key.lower() == "stripe-signature"), None
        )
        signing.verify(
            header, body, self._secrets, now=self._clock.now(), tolerance_s=self._tolerance_s
        )
        try:
            event = parse_json(body)
        except NotJson as exc:
            raise ProtocolError(f"the webhook body is not JSON: {exc}") from exc
        if not isinstance(event, dict):
            raise ProtocolError("the webhook body is not a Stripe event")
        live = self._client.livemode
        if live is not None and event.get("livemode") is not live:
            raise ProtocolError(
                f"a livemode={event.get('livemode')} event for a livemode={live} key"
            )
        return transformers.notification(event)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return transformers.ack(accepted)

    # Bills -------------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> Bill:
        return bill.fetch(self._client, bill_date)


OTHER_MODE = "a similar object exists in"
"""Stripe's 404 for an object of the key's other mode ("…; a similar object exists in live
mode, but a test mode key was used…"): the keys are wrong, and the trade may be alive."""


def _not_on_this_account(declined: StripeDeclined) -> bool:
    """Stripe has no PaymentIntent by the id knowpay recorded on this account (another
    account's): none can be paid here, so closing it counts as closed (as PayPal's unknown
    order does); retrying would fail the same way for ever. Not when Stripe says it exists
    in the key's other mode: that is a key to fix, and the refusal stays one."""
    return (
        declined.status == 404
        and declined.code == RESOURCE_MISSING
        and OTHER_MODE not in declined.message
    )


def _list(page: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    data = page.get("data")
    if page.get("object") != kind or not isinstance(data, list):
        raise ProtocolError(f"expected a Stripe {kind}, got {page.get('object')!r}")
    if not all(isinstance(item, dict) for item in data):
        raise ProtocolError(f"a {kind} with an item that is not an object")
    return data


def build_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """The `stripe` channel, when enabled with a secret key and a webhook secret (else none)."""
    stripe = settings.stripe
    if not (stripe.enabled and stripe.secret_key and stripe.webhook_secret):
        return {}
    if not stripe.secret_key.get_secret_value() or not stripe.webhook_secret.get_secret_value():
        return {}
    return {"stripe": StripeChannel(stripe, StripeClient(stripe), clock)}
