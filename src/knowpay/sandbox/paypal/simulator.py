"""The simulated PayPal: one REST app (client id and secret), its OAuth tokens, the webhook
it delivers events to, the signing certificate, the books, faults and deliveries.

The REST operations themselves (orders, payments, reporting, webhook verification) are in
`api.py`; this module holds the state they share and sends the events."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from knowpay.sandbox.paypal import crypto
from knowpay.sandbox.paypal.faults import API_FAULTS, WEBHOOK_FAULTS, FaultBook
from knowpay.sandbox.paypal.notifier import Delivery, Notifier
from knowpay.sandbox.paypal.store import ApiError, Book, Order, Writer, now_utc, paypal_id, stamp

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

TOKEN_TTL_S = 32400
"""PayPal's access tokens live 9 hours."""
KNOWPAY_DEFAULT_URL = "http://127.0.0.1:8000"
SANDBOX_SUFFIX = "/sandbox"


class AuthError(Exception):
    """A 401 with PayPal's OAuth error body."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.body = {"error": error, "error_description": description}


def default_webhook_url(sandbox_url: str) -> str:
    """knowpay's /notify/paypal: the sandbox mounted at {knowpay}/sandbox (the demo) names it;
    otherwise knowpay's default address."""
    base = sandbox_url.rstrip("/")
    knowpay = base.removesuffix(SANDBOX_SUFFIX) if base.endswith(SANDBOX_SUFFIX) else None
    return f"{knowpay or KNOWPAY_DEFAULT_URL}/notify/paypal"


class PayPalSimulator:
    def __init__(self, config: SandboxConfig) -> None:
        section = config.gateways.get("paypal", {})
        self.base_url = config.public_url.rstrip("/") + "/paypal"
        self.client_id = section.get("client_id") or "AS" + secrets.token_urlsafe(30)
        self.client_secret = section.get("client_secret") or "EK" + secrets.token_urlsafe(30)
        self.merchant_id = section.get("merchant_id") or paypal_id(13)
        self.token_ttl_s = int(section.get("token_ttl_s") or TOKEN_TTL_S)
        webhook_id = section.get("webhook_id") or paypal_id(17)
        self._webhooks_lock = threading.Lock()
        self.webhooks: dict[str, str] = {
            webhook_id: section.get("webhook_url") or default_webhook_url(config.public_url)
        }
        self.webhook_id = webhook_id
        self.key = crypto.generate_key()
        self.certificate = crypto.self_signed_certificate(self.key)
        self.cert_id = f"CERT-{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
        self.cert_url = f"{self.base_url}/v1/notifications/certs/{self.cert_id}"
        self.book = Book()
        self.writer = Writer(self.base_url, self.merchant_id, "merchant@sandbox.example")
        self.faults = FaultBook()
        self.notifier = Notifier(config.time_scale, self._transmit)
        self._tokens: dict[str, float] = {}
        self._tokens_lock = threading.Lock()
        self._forger: rsa.RSAPrivateKey | None = None

    def keys(self) -> dict[str, Any]:
        """What knowpay needs: credentials, webhook id, base URL, the cert host to allow."""
        netloc = urlsplit(self.base_url).netloc
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "webhook_id": self.webhook_id,
            "base_url": self.base_url,
            "merchant_id": self.merchant_id,
            "cert_url": self.cert_url,
            "cert_hosts": [netloc],
        }

    # OAuth --------------------------------------------------------------------------------

    def issue_token(self, authorization: str | None, grant_type: str | None) -> dict[str, Any]:
        """POST /v1/oauth2/token: client credentials in Basic auth."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise AuthError("invalid_client", "Client Authentication failed")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError("invalid_client", "Client Authentication failed") from None
        client_id, _, secret = decoded.partition(":")
        if not (
            secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(secret, self.client_secret)
        ):
            raise AuthError("invalid_client", "Client Authentication failed")
        if grant_type != "client_credentials":
            raise ApiError(400, "unsupported_grant_type", "Grant Type is NULL")
        token = "A21AA" + secrets.token_urlsafe(48)
        with self._tokens_lock:
            self._tokens[token] = time.monotonic() + self.token_ttl_s
        return {
            "scope": "https://uri.paypal.com/services/payments/payment "
            "https://uri.paypal.com/services/payments/refund "
            "https://uri.paypal.com/services/reporting/search/read "
            "https://uri.paypal.com/services/applications/webhooks",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": self.token_ttl_s,
            "nonce": f"{stamp(now_utc())}{secrets.token_urlsafe(12)}",
        }

    def authorize(self, authorization: str | None) -> None:
        """A REST call must carry a live Bearer token."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthError("invalid_token", "No permission for the requested operation")
        token = authorization[7:].strip()
        with self._tokens_lock:
            expires = self._tokens.get(token)
        if expires is None or expires < time.monotonic():
            raise AuthError("invalid_token", "Access Token not found in cache")

    def expire_tokens(self) -> int:
        with self._tokens_lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    # Faults on calls ------------------------------------------------------------------------

    def api_faults(self, operation: str, out_trade_no: str | None) -> tuple[int | None, float]:
        """(an HTTP status to fail with, seconds to stall after the work) for this call."""
        status, stall = None, 0.0
        for fault in self.faults.take(API_FAULTS, out_trade_no, operation=operation, limit=1):
            if fault.kind == "http_5xx":
                status = fault.status
            else:
                stall = max(stall, fault.seconds)
        return status, stall

    def out_trade_no_of(
        self, order_id: str | None = None, capture_id: str | None = None
    ) -> str | None:
        """The invoice_id behind an order or capture id (to match faults to a payment)."""
        with self.book.lock:
            if capture_id is not None:
                capture = self.book.captures.get(capture_id)
                order_id = capture.order_id if capture else None
            order = self.book.orders.get(order_id or "")
            return order.invoice_id if order else None

    # The buyer ------------------------------------------------------------------------------

    def approve(self, order_id: str) -> Order:
        """The buyer logs in and approves: APPROVED, and CHECKOUT.ORDER.APPROVED goes out."""
        with self.book.lock:
            order = self.book.order(order_id)
            if order.status == "APPROVED":
                return order
            if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED"):
                raise ApiError(
                    422,
                    "ORDER_NOT_APPROVABLE",
                    f"The order is {order.status} and cannot be approved.",
                )
            order.status = "APPROVED"
            order.payer_id = paypal_id(13)
            order.updated_at = now_utc()
            resource = self.writer.order(order)
        self.emit(
            "CHECKOUT.ORDER.APPROVED",
            "checkout-order",
            resource,
            order.invoice_id,
            "An order has been approved by buyer",
        )
        return order

    def return_url(self, order: Order, *, cancelled: bool) -> str | None:
        """Where the browser goes: return_url?token=…&PayerID=… (cancel_url?token=…)."""
        target = order.cancel_url if cancelled else order.return_url
        if not target:
            return None
        params = {"token": order.id}
        if not cancelled and order.payer_id:
            params["PayerID"] = order.payer_id
        return f"{target}{'&' if '?' in target else '?'}{urlencode(params)}"

    # Webhooks ------------------------------------------------------------------------------

    def set_webhook(self, webhook_id: str | None, url: str) -> dict[str, str]:
        """Point a webhook at a URL (a new one when the id is unknown or absent)."""
        with self._webhooks_lock:
            webhook_id = webhook_id or paypal_id(17)
            self.webhooks[webhook_id] = url
            return {"id": webhook_id, "url": url}

    def remove_webhook(self, webhook_id: str) -> bool:
        with self._webhooks_lock:
            return self.webhooks.pop(webhook_id, None) is not None

    def emit(
        self,
        event_type: str,
        resource_type: str,
        resource: dict[str, Any],
        out_trade_no: str | None,
        summary: str,
    ) -> None:
        """One event, delivered to every webhook, faults applied."""
        event_id = f"WH-{paypal_id(17)}-{paypal_id(17)}"
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": stamp(now_utc()),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary,
            "resource": resource,
            "links": [
                {
                    "href": f"{self.base_url}/v1/notifications/webhooks-events/{event_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"{self.base_url}/v1/notifications/webhooks-events/{event_id}/resend",
                    "rel": "resend",
                    "method": "POST",
                },
            ],
        }
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        faults = {
            f.kind: f for f in self.faults.take(WEBHOOK_FAULTS, out_trade_no, event=event_type)
        }
        with self._webhooks_lock:
            targets = list(self.webhooks.items())
        for webhook_id, url in targets:
            delivery = Delivery(
                id="",
                event_id=event_id,
                event_type=event_type,
                out_trade_no=out_trade_no,
                webhook_id=webhook_id,
                url=url,
                body=body,
                faults=frozenset(faults),
                copies=faults["duplicate"].count if "duplicate" in faults else 1,
                lost="lost" in faults,
            )
            delay = faults["delayed"].delay_s if "delayed" in faults else 0.0
            self.notifier.submit(delivery, first_delay_s=delay)

    def _transmit(self, delivery: Delivery) -> tuple[dict[str, str], bytes]:
        """A new transmission of a delivery: id, time and signature, faults applied; to the
        webhook's URL as it is now (a webhook repointed meanwhile gets the retries)."""
        with self._webhooks_lock:
            delivery.url = self.webhooks.get(delivery.webhook_id, delivery.url)
        transmission_id = str(uuid.uuid1())
        transmission_time = stamp(now_utc())
        faults = delivery.faults
        webhook_id = (
            "WH-NOT-YOURS" + paypal_id(8) if "wrong_webhook_id" in faults else delivery.webhook_id
        )
        key = self._forged_key() if "forged_signature" in faults else self.key
        signature = crypto.sign(
            crypto.message(transmission_id, transmission_time, webhook_id, delivery.body), key
        )
        body = _tampered(delivery.body) if "tampered_body" in faults else delivery.body
        cert_url = (
            f"https://certs.attacker.invalid/v1/notifications/certs/{self.cert_id}"
            if "foreign_cert_url" in faults
            else self.cert_url
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PayPal/AUHD-214.0-58128346",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": signature,
            "PAYPAL-CERT-URL": cert_url,
            "PAYPAL-AUTH-ALGO": crypto.AUTH_ALGO,
        }
        return headers, body

    def _forged_key(self) -> rsa.RSAPrivateKey:
        if self._forger is None:
            self._forger = crypto.generate_key()
        return self._forger

    def reset(self) -> None:
        """Clear the faults and forget deliveries (pending retries are never sent)."""
        self.faults.clear()
        self.notifier.reset()


def _tampered(body: bytes) -> bytes:
    """The event with its amount changed after signing."""
    event = json.loads(body)
    amount = event.get("resource", {}).get("amount")
    if isinstance(amount, dict):
        amount["value"] = "0.01" if amount.get("value") != "0.01" else "0.02"
    else:
        event["summary"] = f"{event.get('summary', '')} (tampered)"
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
