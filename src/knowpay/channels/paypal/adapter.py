"""The `paypal` channel: PayPal Checkout through Orders v2 (intent CAPTURE), Payments v2
refunds and signed webhooks at `/notify/paypal`.

The buyer approves the order at PayPal; nothing is charged until the merchant captures it.
knowpay captures on the buyer's return (`/return/{payment_id}` runs query_payment), on the
CHECKOUT.ORDER.APPROVED webhook, or from the active-query job — all three through
query_payment, with one `PayPal-Request-Id` per payment, so a second capture is PayPal's
replay of the first, never a second charge.

Closing: PayPal has no void for an uncaptured CAPTURE-intent order; an unapproved order
expires on its own (3 hours by default) and an approved one is charged only if the merchant
captures it. close_payment therefore marks the order at PayPal (its custom_id, which PayPal
lets a merchant replace while the order is CREATED or APPROVED) and every capture path here
refuses a marked order. Only when the mark is in place does close report CLOSED.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from knowpay.channels.base import Channel
from knowpay.channels.errors import (
    ChannelDeclined,
    ChannelUnavailable,
    ProtocolError,
    SignatureInvalid,
)
from knowpay.channels.paypal import bill, signing, transformers
from knowpay.channels.paypal.client import PayPalClient, ResourceNotFound
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
from knowpay.kit.config import PayPalSettings, Settings
from knowpay.kit.jsontext import NotJson, parse_json

logger = logging.getLogger(__name__)

ORDERS = "/v2/checkout/orders"
VERIFY_PATH = "/v1/notifications/verify-webhook-signature"
ORDER_NOT_APPROVED = "ORDER_NOT_APPROVED"
ORDER_ALREADY_CAPTURED = "ORDER_ALREADY_CAPTURED"
PATCHABLE = frozenset({"CREATED", "APPROVED"})
"""PayPal's Orders v2 reference: PATCH updates an order that is CREATED or APPROVED."""
UNCAPTURED = frozenset({"CREATED", "SAVED", "APPROVED", "PAYER_ACTION_REQUIRED"})
DESCRIPTION_MAX = 127
NOTE_MAX = 255
HEADERS = {
    "transmission_id": "paypal-transmission-id",
    "transmission_time": "paypal-transmission-time",
    "transmission_sig": "paypal-transmission-sig",
    "cert_url": "paypal-cert-url",
    "auth_algo": "paypal-auth-algo",
}

BILL_READY_AFTER = timedelta(hours=3)
"""How long after its day ends the gateway's bill of that day is complete."""


def create_request_id(out_trade_no: str) -> str:
    """PayPal-Request-Id of the order's creation: a retry replays the same order."""
    return f"knowpay-create-{out_trade_no}"


def capture_request_id(out_trade_no: str) -> str:
    """PayPal-Request-Id of the capture: every path that captures a payment uses this one."""
    return f"knowpay-capture-{out_trade_no}"


class PayPalChannel:
    """PayPal Checkout (redirect to PayPal, capture on return or webhook)."""

    name = "paypal"
    gateway = "paypal"

    def __init__(self, client: PayPalClient, settings: PayPalSettings) -> None:
        self._client = client
        currencies = frozenset(code.strip().upper() for code in settings.currencies)
        self.profile = ChannelProfile(
            currencies=currencies,
            devices=ALL_DEVICES,
            min_amount={code: transformers.minimum(code) for code in currencies},
            # Transaction search: up to three hours before a transaction appears.
            bill_ready_after=BILL_READY_AFTER,
        )
        self._verify_mode = settings.verify_mode
        self._cert_hosts = tuple(settings.cert_hosts)
        self._certificates = signing.CertificateCache(client.fetch_certificate)

    def close(self) -> None:
        """Close the gateway's HTTP connections (channels of one gateway share them)."""
        self._client.close()

    # Payments ----------------------------------------------------------------------------

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        if request.amount.currency not in self.profile.currencies:
            raise ProtocolError(f"PayPal is not configured for {request.amount.currency}")
        if not request.return_url:
            raise ProtocolError("PayPal checkout needs a return_url to send the buyer back to")
        body = {
            "intent": "CAPTURE",
            "purchase_units": [
                {
                    "reference_id": "default",
                    "invoice_id": request.out_trade_no,
                    "custom_id": request.out_trade_no,
                    "description": request.subject[:DESCRIPTION_MAX] or "-",
                    "amount": {
                        "currency_code": request.amount.currency,
                        "value": transformers.to_value(request.amount),
                    },
                }
            ],
            # A cancel lands on the same knowpay page: it asks PayPal and finds nothing paid.
            "application_context": {
                "return_url": request.return_url,
                "cancel_url": request.return_url,
                "user_action": "PAY_NOW",
                "shipping_preference": "NO_SHIPPING",
            },
        }
        order = self._client.call(
            "POST", ORDERS, body=body, request_id=create_request_id(request.out_trade_no)
        )
        order_id = order.get("id")
        if not isinstance(order_id, str) or not order_id:
            raise ProtocolError("PayPal created an order without an id")
        return CreatePaymentResult(
            status=ChannelStatus.PENDING,
            action=PaymentAction(type="redirect", url=transformers.approval_url(order)),
            gateway_trade_no=order_id,
        )

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        """Read the order and, once the buyer approved it, capture it ("capture on return")."""
        if not gateway_trade_no:
            return PaymentQueryResult(status=ChannelStatus.PENDING)  # no order to ask about
        order = self._order(gateway_trade_no, out_trade_no)
        if order is None:
            return PaymentQueryResult(status=ChannelStatus.CLOSED, gateway_trade_no=None)
        unit = transformers.purchase_unit(order)
        if order.get("status") == "APPROVED" and not transformers.captures(order):
            if transformers.is_closed(unit):
                return PaymentQueryResult(
                    status=ChannelStatus.CLOSED, gateway_trade_no=gateway_trade_no
                )
            return self._capture(gateway_trade_no, out_trade_no)
        return transformers.order_result(order)

    def _order(self, order_id: str, out_trade_no: str) -> dict[str, Any] | None:
        """The order, None when PayPal has none by that id; it must be this payment's."""
        try:
            order = self._client.call("GET", f"{ORDERS}/{order_id}")
        except ResourceNotFound:
            return None
        _check_ours(order, order_id, out_trade_no)
        return order

    def _capture(self, order_id: str, out_trade_no: str) -> PaymentQueryResult:
        try:
            order = self._client.call(
                "POST",
                f"{ORDERS}/{order_id}/capture",
                body={},
                request_id=capture_request_id(out_trade_no),
            )
        except ChannelDeclined as declined:
            if isinstance(declined, ResourceNotFound):
                return PaymentQueryResult(status=ChannelStatus.CLOSED)
            if declined.code in (ORDER_ALREADY_CAPTURED, ORDER_NOT_APPROVED):
                # Captured by another path (its own request id expired), or not approved
                # after all: what the order says now is the answer.
                current = self._order(order_id, out_trade_no)
                if current is None:
                    return PaymentQueryResult(status=ChannelStatus.CLOSED)
                return transformers.order_result(current)
            # INSTRUMENT_DECLINED, PAYER_CANNOT_PAY …: this attempt failed; a decline is data.
            return PaymentQueryResult(
                status=ChannelStatus.FAILED,
                gateway_trade_no=order_id,
                failure_code=declined.code,
                failure_message=declined.message,
            )
        _check_ours(order, order_id, out_trade_no)
        return transformers.order_result(order)

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        """Make sure the order is never captured, and say so (CLOSED) only once that holds:
        a captured order reports its capture, an order PayPal would not let us mark stays
        PENDING (it can still be approved, and a capture of it would be recorded)."""
        if not gateway_trade_no:
            # Create never answered: the buyer never saw an approve link for it.
            return PaymentQueryResult(status=ChannelStatus.CLOSED)
        order = self._order(gateway_trade_no, out_trade_no)
        if order is None:
            return PaymentQueryResult(status=ChannelStatus.CLOSED)
        unit = transformers.purchase_unit(order)
        status = str(order.get("status") or "")
        if transformers.captures(order) or status not in UNCAPTURED:
            return transformers.order_result(order)
        if not transformers.is_closed(unit):
            if status not in PATCHABLE:
                return PaymentQueryResult(
                    status=ChannelStatus.PENDING, gateway_trade_no=gateway_trade_no
                )
            try:
                self._mark_closed(gateway_trade_no, out_trade_no)
            except ChannelDeclined as declined:
                logger.warning("PayPal order %s not marked closed: %s", gateway_trade_no, declined)
        # Look again: a capture may have raced the mark.
        after = self._order(gateway_trade_no, out_trade_no)
        if after is None:
            return PaymentQueryResult(status=ChannelStatus.CLOSED)
        if transformers.captures(after):
            return transformers.order_result(after)
        if transformers.is_closed(transformers.purchase_unit(after)):
            return PaymentQueryResult(
                status=ChannelStatus.CLOSED, gateway_trade_no=gateway_trade_no
            )
        return PaymentQueryResult(status=ChannelStatus.PENDING, gateway_trade_no=gateway_trade_no)

    def _mark_closed(self, order_id: str, out_trade_no: str) -> None:
        patch = [
            {
                "op": "replace",
                "path": "/purchase_units/@reference_id=='default'/custom_id",
                "value": transformers.CLOSED_MARK + out_trade_no,
            }
        ]
        self._client.call("PATCH", f"{ORDERS}/{order_id}", body=patch)

    # Refunds -----------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund against the order's capture; idempotent by `PayPal-Request-Id` =
        out_refund_no (a retry is PayPal's replay of the first answer)."""
        if not request.gateway_trade_no:
            return _refund_failed("no_paypal_order", "The payment has no PayPal order id.")
        try:
            order = self._order(request.gateway_trade_no, request.out_trade_no)
        except ChannelDeclined as declined:
            return _refund_failed(declined.code, declined.message)
        capture_id = transformers.paid_capture_id(order) if order is not None else None
        if capture_id is None:
            return _refund_failed("no_paid_capture", "PayPal holds no paid capture to refund.")
        body = {
            "amount": {
                "currency_code": request.amount.currency,
                "value": transformers.to_value(request.amount),
            },
            "invoice_id": request.out_trade_no,
            "custom_id": request.out_refund_no,
            "note_to_payer": request.payer_note[:NOTE_MAX] or "refund",
        }
        try:
            refund = self._client.call(
                "POST",
                f"/v2/payments/captures/{capture_id}/refund",
                body=body,
                request_id=request.out_refund_no,
            )
        except ChannelDeclined as declined:
            return _refund_failed(declined.code, declined.message)
        _check_refund(refund, request.out_refund_no)
        return transformers.refund_result(refund)

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        """GET the refund by PayPal's id (PayPal cannot look one up by knowpay's number: without
        the id nothing is known yet, and the refund is sent again with its request id)."""
        if not gateway_refund_no:
            return RefundResult(status=ChannelStatus.PENDING)
        try:
            refund = self._client.call("GET", f"/v2/payments/refunds/{gateway_refund_no}")
        except ResourceNotFound as missing:
            return RefundResult(
                ChannelStatus.PENDING, failure_code=missing.code, failure_message=missing.message
            )
        _check_refund(refund, out_refund_no)
        return transformers.refund_result(refund)

    # Notifications -----------------------------------------------------------------------

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        lowered = {key.lower(): value for key, value in headers.items()}
        fields = {name: lowered.get(header, "").strip() for name, header in HEADERS.items()}
        missing = [HEADERS[name] for name, value in fields.items() if not value]
        if missing:
            raise SignatureInvalid(f"the webhook lacks {', '.join(missing)}")
        if self._verify_mode == "offline":
            self._verify_offline(fields, body)
        else:
            self._verify_postback(fields, body)
        event = transformers.parse_event(body)
        event_type = str(event["event_type"])
        if event_type in transformers.PAYMENT_EVENTS:
            return transformers.capture_notification(event)
        if event_type in transformers.REFUND_EVENTS:
            return transformers.refund_notification(event)
        if event_type == transformers.ORDER_APPROVED:
            return self._approved(event)
        return transformers.other_event(event)

    def _verify_offline(self, fields: Mapping[str, str], body: bytes) -> None:
        cert_url = fields["cert_url"]
        if not signing.cert_url_allowed(cert_url, self._cert_hosts):
            raise SignatureInvalid(f"PAYPAL-CERT-URL {cert_url!r} is not on an allowed host")
        try:
            certificate = self._certificates.get(cert_url, self._client.clock.now())
        except ChannelDeclined as exc:
            raise SignatureInvalid(f"the signing certificate cannot be fetched: {exc}") from exc
        message = signing.transmission_message(
            fields["transmission_id"], fields["transmission_time"], self._client.webhook_id, body
        )
        if not signing.verify(
            certificate, message, fields["transmission_sig"], fields["auth_algo"]
        ):
            raise SignatureInvalid("the webhook's signature does not verify for our webhook id")

    def _verify_postback(self, fields: Mapping[str, str], body: bytes) -> None:
        """Ask PayPal, with the event exactly as received (re-serialising it changes the
        bytes PayPal signed and the answer is FAILURE)."""
        try:
            parse_json(body)
        except NotJson as exc:  # before anything is trusted
            raise SignatureInvalid(f"the webhook is not JSON: {exc}") from exc
        head = {name: fields[name] for name in ("auth_algo", "cert_url", "transmission_id")}
        head |= {
            "transmission_sig": fields["transmission_sig"],
            "transmission_time": fields["transmission_time"],
            "webhook_id": self._client.webhook_id,
        }
        prefix = json.dumps(head, separators=(",", ":"))[:-1].encode("utf-8")
        raw = prefix + b',"webhook_event":' + body.strip() + b"}"
        try:
            answer = self._client.call("POST", VERIFY_PATH, raw_body=raw)
        except ChannelDeclined as declined:
            raise SignatureInvalid(f"PayPal would not verify the webhook: {declined}") from None
        status = answer.get("verification_status")
        if status != "SUCCESS":
            raise SignatureInvalid(f"PayPal says the webhook's signature is {status!r}")

    def _approved(self, event: Mapping[str, Any]) -> Notification:
        """The buyer approved but may never come back: capture now (query_payment), unless
        knowpay closed the order. If PayPal cannot be reached the notification stays pending
        and the active-query job captures later."""
        order: Mapping[str, Any] = event["resource"]
        order_id = order.get("id")
        unit = transformers.purchase_unit(order)
        out_trade_no = transformers.out_trade_no_of(unit)
        if not isinstance(order_id, str) or not order_id or not out_trade_no:
            raise ProtocolError("an approved-order event without the order id or invoice_id")
        if unit.get("custom_id") != unit.get("invoice_id"):
            # Not an order as knowpay makes them (both ids = out_trade_no), or one knowpay
            # closed: nothing to capture on the event's word.
            return Notification(
                kind="payment",
                external_id=str(event["id"]),
                out_trade_no=out_trade_no,
                status=ChannelStatus.PENDING,
                gateway_trade_no=order_id,
            )
        try:
            result = self.query_payment(out_trade_no, gateway_trade_no=order_id)
        except (ChannelUnavailable, ChannelDeclined) as exc:
            logger.warning("capture of approved PayPal order %s deferred: %s", order_id, exc)
            result = PaymentQueryResult(status=ChannelStatus.PENDING, gateway_trade_no=order_id)
        return Notification(
            kind="payment",
            external_id=str(event["id"]),
            out_trade_no=out_trade_no,
            status=result.status,
            gateway_trade_no=order_id,
            amount=result.amount or transformers.money(unit.get("amount"), "amount"),
            paid_at=result.paid_at,
            failure_code=result.failure_code,
            failure_message=result.failure_message,
        )

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return transformers.ack(accepted)

    # Bills -------------------------------------------------------------------------------

    def fetch_bill(self, bill_date: date) -> Bill:
        return bill.fetch(self._client, bill_date)


def _check_ours(order: Mapping[str, Any], order_id: str, out_trade_no: str) -> None:
    """An answer about another order, or an order of another payment, is no answer."""
    if order.get("id") != order_id:
        raise ProtocolError(
            f"asked about order {order_id}, PayPal answered about {order.get('id')}"
        )
    found = transformers.out_trade_no_of(transformers.purchase_unit(order))
    if found != out_trade_no:
        raise ProtocolError(f"order {order_id} belongs to {found!r}, not {out_trade_no}")


def _check_refund(refund: Mapping[str, Any], out_refund_no: str) -> None:
    custom_id = refund.get("custom_id")
    if custom_id is not None and custom_id != out_refund_no:
        raise ProtocolError(f"asked about refund {out_refund_no}, PayPal answered {custom_id!r}")


def _refund_failed(code: str, message: str) -> RefundResult:
    return RefundResult(status=ChannelStatus.FAILED, failure_code=code, failure_message=message)


def build_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """The `paypal` channel when client id, secret and webhook id are configured (else none)."""
    paypal = settings.paypal
    if not (paypal.enabled and paypal.client_id and paypal.client_secret and paypal.webhook_id):
        return {}
    return {"paypal": PayPalChannel(PayPalClient(paypal, clock), paypal)}
