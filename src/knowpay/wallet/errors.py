"""Errors of the wallet domain."""

from __future__ import annotations

from knowpay.kit.errors import KnowpayError, Unprocessable


class InsufficientBalance(KnowpayError):
    status, code, title = 402, "insufficient_balance", "The wallet balance is too low"


class WalletCurrencyNotSupported(Unprocessable):
    code, title = "wallet_currency_not_supported", "The wallet does not hold this currency"


class TopUpOutOfRange(Unprocessable):
    code, title = "top_up_out_of_range", "The top-up amount is outside what is allowed"


class WalletBalanceCapReached(Unprocessable):
    code, title = "wallet_balance_cap_reached", "The top-up would exceed the wallet's cap"
