"""Errors of the webhooks domain."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound


class EndpointNotFound(NotFound):
    code, title = "webhook_endpoint_not_found", "No such webhook endpoint"


class EndpointDeleted(Conflict):
    code, title = "webhook_endpoint_deleted", "The webhook endpoint was deleted"


class DeliveryNotFound(NotFound):
    code, title = "webhook_delivery_not_found", "No such webhook delivery"


class EventNotFound(NotFound):
    code, title = "event_not_found", "No such event"
