"""Stripe (PaymentIntents, webhooks signed with the endpoint secret): channel `stripe`."""

from knowpay.channels.stripe.adapter import StripeChannel, build_channels

__all__ = ["StripeChannel", "build_channels"]
