"""How Stripe signs a webhook: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, each v1
the hex HMAC-SHA256 of `"<t>.<body>"` keyed with one of the endpoint's secrets (the whole
`whsec_…` text). While a secret is being rolled Stripe signs with the old one too. Written
again here, apart from knowpay's adapter, so that one mistake cannot sit on both sides."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Sequence

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_webhook_secret() -> str:
    return "whsec_" + random_token(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    signed_payload = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed_payload, hashlib.sha256).hexdigest()


def header(endpoint_secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """The Stripe-Signature header: one v1 per secret in force (newest first)."""
    signatures = ",".join(f"v1={sign(secret, timestamp, body)}" for secret in endpoint_secrets)
    return f"t={timestamp},{signatures}"
