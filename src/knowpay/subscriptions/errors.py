"""Errors of the subscriptions domain."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound, Unprocessable


class SubscriptionNotFound(NotFound):
    code, title = "subscription_not_found", "No such subscription"


class ProductNotSubscribable(Unprocessable):
    code, title = "product_not_subscribable", "Only a membership with a period renews"


class SubscriptionExists(Conflict):
    code, title = "subscription_exists", "The buyer already subscribes to this product"


class SubscriptionNotChangeable(Conflict):
    code, title = "subscription_not_changeable", "The subscription cannot change so now"
