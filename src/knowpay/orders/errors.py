"""Errors of the orders domain."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound, Unprocessable


class OrderNotFound(NotFound):
    code, title = "order_not_found", "No such order"


class OutTradeNoConflict(Conflict):
    code, title = "out_trade_no_conflict", "This out_trade_no was used for a different order"


class OutTradeNoNotYours(Unprocessable):
    code, title = "validation_error", "The request has invalid fields"


class OrderNotPayable(Conflict):
    code, title = "order_not_payable", "The order cannot be paid"


class OrderExpired(Conflict):
    code, title = "order_expired", "The order has expired"


class OrderAlreadyPaid(Conflict):
    code, title = "order_already_paid", "The order is already paid"


class MixedCurrencies(Unprocessable):
    code, title = "currency_mismatch", "All items must be priced in the order's currency"


class OrderTooLarge(Unprocessable):
    code, title = "order_amount_too_large", "The order's total is more than an amount may be"


class BuyerNotFound(Unprocessable):
    code, title = "user_not_found", "No such buyer for this app"
