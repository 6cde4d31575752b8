"""The Stripe simulator: PaymentIntents and Refunds API, payer page, signed webhooks, faults."""

from knowpay.sandbox.stripe.app import create_app

__all__ = ["create_app"]
