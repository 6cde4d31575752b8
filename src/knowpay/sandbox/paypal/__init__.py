"""The PayPal simulator: Orders v2, Payments v2, OAuth, webhooks signed with a certificate."""

from knowpay.sandbox.paypal.app import create_app

__all__ = ["create_app"]
