"""Errors of the catalog domain."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound, Unprocessable


class ProductNotFound(NotFound):
    code, title = "product_not_found", "No such product"


class IllegalProductTransition(Conflict):
    code, title = "illegal_product_transition", "The product cannot move to that status"


class ProductNotPublishable(Unprocessable):
    code, title = "product_not_publishable", "The product cannot be published yet"


class ProductNotForSale(Unprocessable):
    code, title = "product_not_for_sale", "The product is not on sale"


class PriceNotAvailable(Unprocessable):
    code, title = "price_not_available", "The product has no price in this currency"
