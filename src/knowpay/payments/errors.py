"""Errors of the payments domain."""

from __future__ import annotations

from knowpay.kit.errors import KnowpayError, NotFound, Unprocessable


class PaymentNotFound(NotFound):
    code, title = "payment_not_found", "No such payment"


class AmountMismatch(Unprocessable):
    code, title = "amount_mismatch", "The gateway reported another amount or currency"


class CurrencyNotSupported(Unprocessable):
    code, title = "currency_not_supported", "The channel cannot charge this currency"


class AmountNotSupported(Unprocessable):
    code, title = "amount_not_supported", "The amount is outside what the channel accepts"


class NoChannelAvailable(Unprocessable):
    code, title = "no_channel_available", "No channel can pay this order now"


class ReturnUrlNotAllowed(Unprocessable):
    code, title = "return_url_not_allowed", "The return_url leads outside the platform"


class RiskDenied(Unprocessable):
    code, title = "risk_denied", "Risk control declined the payment"


class ChannelUnavailableError(KnowpayError):
    status, code, title = 503, "channel_unavailable", "The payment channel cannot be reached"


class GatewayError(KnowpayError):
    status, code, title = (
        502,
        "gateway_error",
        "The payment gateway refused or answered out of protocol",
    )
