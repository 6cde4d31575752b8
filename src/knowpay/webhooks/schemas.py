"""Request and response bodies of webhook endpoints and deliveries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, cast, get_args
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowpay.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

EventType = Literal[
    "order.paid",
    "order.closed",
    "order.payment_reminder",
    "payment.succeeded",
    "payment.failed",
    "payment.duplicate_detected",
    "refund.created",
    "refund.succeeded",
    "refund.failed",
    "refund.rejected",
    "entitlement.granted",
    "entitlement.revoked",
    "limit.near",
    "settlement.created",
    "settlement.paid",
    "subscription.created",
    "subscription.updated",
    "subscription.renewal_upcoming",
    "subscription.renewed",
    "subscription.payment_failed",
    "subscription.canceled",
]
"""Every event type knowpay sends."""

EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))
ALL_EVENTS = "*"

EventName = Annotated[str, Field(json_schema_extra={"enum": sorted(EVENT_TYPES | {ALL_EVENTS})})]
"""An event type, or `*` for every one: listed in the schema, so that clients know them all."""
EndpointUrl = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
EventList = Annotated[list[EventName], Field(min_length=1, max_length=len(EVENT_TYPES) + 1)]
Description = Annotated[str | None, Field(max_length=200)]


class EndpointCreate(BaseModel):
    """A URL that will receive the listed events (`*` for every event)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://www.example.com/knowpay/webhooks",
                    "events": ["order.paid", "refund.succeeded"],
                }
            ]
        },
    )

    url: EndpointUrl
    events: EventList
    description: Description = None

    @field_validator("url")
    @classmethod
    def _sendable_url(cls, value: str) -> str:
        return sendable_url(value)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        return known_events(value)


class EndpointUpdate(BaseModel):
    """What changes of an endpoint: fields left out stay as they are; `description: null`
    clears the description. A new URL or list of events applies to events from now on."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"events": ["*"]}, {"url": "https://example.com/h"}]},
    )

    url: EndpointUrl | None = None
    events: EventList | None = None
    description: Description = None

    @field_validator("url")
    @classmethod
    def _sendable_url(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("an endpoint needs a URL; leave `url` out to keep it")
        return sendable_url(value)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str]:
        if value is None:
            raise ValueError("an endpoint needs events; leave `events` out to keep them")
        return known_events(value)


def sendable_url(value: str) -> str:
    """A host to send to, a port that exists, and no credentials in the URL (they would be
    shown back in every listing and sent as Basic authentication)."""
    parts = urlsplit(value)
    try:
        port = parts.port  # raises on a port out of range or not a number
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the URL's port is not valid")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not carry a user name or password")
    try:  # what httpx and the resolver refuse at every send (a label over 63, an empty one)
        httpx.URL(value)
        parts.hostname.encode("idna")
    except (httpx.InvalidURL, UnicodeError):
        raise ValueError("the URL's host is not a valid host name") from None
    return value


def known_events(value: list[str]) -> list[str]:
    """The event types, each once and sorted; an unknown one is refused."""
    unknown = sorted(set(value) - EVENT_TYPES - {ALL_EVENTS})
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    return sorted(set(value))


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period_s: int = Field(
        default=86400,
        strict=True,
        ge=0,
        le=7 * 86400,
        description=(
            "How long the old secret keeps signing beside the new one (earlier old secrets keep"
            " their own grace periods; 0 stops every old secret at once)"
        ),
    )


class EndpointOut(BaseModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    events: list[str]
    description: str | None
    status: Literal["enabled", "deleted"]
    created_at: datetime
    secret: str | None = Field(default=None, description="Shown only when created or rotated")

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, secret: str | None = None) -> EndpointOut:
        return cls(
            id=endpoint.id,
            url=_without_password(endpoint.url),
            events=json.loads(endpoint.events_json),
            description=endpoint.description,
            status="deleted" if endpoint.deleted_at else "enabled",
            created_at=endpoint.created_at,
            secret=secret,
        )


def _without_password(url: str) -> str:
    """An endpoint stored with `user:password@` before such URLs were refused: the password
    is not shown back."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptOut:
        return cls(
            attempted_at=attempt.attempted_at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            response_excerpt=attempt.response_excerpt,
            error=attempt.error,
        )


DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]
"""`pending` until the endpoint answers 2xx (`succeeded`) or the retry window ends (`failed`);
`cancelled` when the endpoint was deleted first."""


class DeliveryOut(BaseModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptOut]

    @classmethod
    def of(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        return cls(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=cast(DeliveryStatus, delivery.status),
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            last_status_code=delivery.last_status_code,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
            attempt_log=[AttemptOut.of(a) for a in attempts],
        )


class EventOut(BaseModel):
    """An event as its webhook deliveries carry it (the same `id`, `type` and `data`)."""

    object: Literal["event"] = "event"
    id: str
    type: str
    created: datetime
    app_id: str | None
    data: dict[str, Any] = Field(description="`{object: …}`: the object as it was then")

    @classmethod
    def of(cls, payload: str) -> EventOut:
        return cls.model_validate_json(payload)
