"""Errors of the payments domain."""

from __future__ import annotations

from typing import Any

from knowpay.kit.errors import KnowpayError, NotFound, Unprocessable


class PaymentNotFound(NotFound):
    code, title = "payment_not_found", "No such payment"


class AmountMismatch(Unprocessable):
    code, title = "amount_mismatch", "The gateway reported another amount or currency"


class TradeMismatch(Unprocessable):
    code, title = "gateway_trade_mismatch", "The gateway named another trade for this payment"


class CurrencyNotSupported(Unprocessable):
    code, title = "currency_not_supported", "The channel cannot charge this currency"


class AmountNotSupported(Unprocessable):
    code, title = "amount_not_supported", "The amount is outside what the channel accepts"


class PayerDetailsMissing(Unprocessable):
    code, title = "payer_details_missing", "The channel needs more about the payer"


class ChannelNotForTopUps(Unprocessable):
    code, title = "channel_not_for_top_ups", "A top-up cannot be paid from the wallet"


class NoChannelAvailable(Unprocessable):
    code, title = "no_channel_available", "No channel can pay this order now"


class ReturnUrlNotAllowed(Unprocessable):
    code, title = "return_url_not_allowed", "The return_url leads outside the platform"


class RiskDenied(Unprocessable):
    code, title = "risk_denied", "Risk control declined the payment"


RETRY_UNREACHABLE_AFTER_S = 5
"""What `Retry-After` says when a gateway failed a call and its breaker is not open (yet)."""


class ChannelUnavailableError(KnowpayError):
    """503 with `Retry-After`: the breaker's time left when it is open, else a few seconds."""

    status, code, title = 503, "channel_unavailable", "The payment channel cannot be reached"

    def __init__(
        self, detail: str | None = None, *, retry_after_s: int | None = None, **extra: Any
    ) -> None:
        seconds = RETRY_UNREACHABLE_AFTER_S if retry_after_s is None else max(1, retry_after_s)
        extra.setdefault("headers", {"Retry-After": str(seconds)})
        super().__init__(detail, **extra)


class GatewayError(KnowpayError):
    status, code, title = (
        502,
        "gateway_error",
        "The payment gateway refused or answered out of protocol",
    )
