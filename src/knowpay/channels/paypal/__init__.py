"""PayPal Checkout (Orders v2, Payments v2 refunds, signed webhooks): channel `paypal`."""

from knowpay.channels.paypal.adapter import PayPalChannel, build_channels

__all__ = ["PayPalChannel", "build_channels"]
