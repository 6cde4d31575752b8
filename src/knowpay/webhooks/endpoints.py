"""Routes of webhook endpoints, their delivery log, and the app's events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel

from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretBox
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.webhooks import service
from knowpay.webhooks.schemas import (
    DeliveryOut,
    DeliveryStatus,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EventOut,
    EventType,
    SecretRotation,
)
from knowpay.webhooks.targets import check_url, private_targets_allowed

router = APIRouter(route_class=SessionRoute, prefix="/v1/webhook-endpoints", tags=["webhooks"])
events_router = APIRouter(route_class=SessionRoute, prefix="/v1/events", tags=["webhooks"])

AppCaller = Annotated[Principal, Depends(require_roles(Role.APP))]


def _box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


Box = Annotated[SecretBox, Depends(_box)]


class Deleted(BaseModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    deleted: bool = True


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EndpointOut)
def create_endpoint(
    body: EndpointCreate,
    request: Request,
    caller: AppCaller,
    session: DbSession,
    clock: AppClock,
    box: Box,
) -> EndpointOut:
    """Subscribe a URL to events. The signing `secret` is shown only in this response.
    In production the URL must be https to a public host (422 webhook_url_not_allowed)."""
    _check_target(request, body.url)
    endpoint, secret = service.create_endpoint(session, box, caller, body, clock.now())
    return EndpointOut.of(endpoint, secret)


def _check_target(request: Request, url: str) -> None:
    """In production, only https to a public host (422 webhook_url_not_allowed)."""
    settings: Settings = request.app.state.settings
    if not private_targets_allowed(settings.environment, settings.webhook_private_targets):
        check_url(url)


@router.get("", response_model=Page[EndpointOut])
def list_endpoints(
    caller: AppCaller, session: DbSession, params: Annotated[PageParams, Depends(page_params)]
) -> Page[EndpointOut]:
    """The app's endpoints, newest first."""
    endpoints, has_more = service.list_endpoints(session, caller, params)
    return Page[EndpointOut](data=[EndpointOut.of(e) for e in endpoints], has_more=has_more)


@router.get("/{endpoint_id}", response_model=EndpointOut)
def read_endpoint(endpoint_id: str, caller: AppCaller, session: DbSession) -> EndpointOut:
    """One endpoint (without its secret)."""
    return EndpointOut.of(service.get_endpoint(session, caller, endpoint_id))


@router.patch("/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(
    endpoint_id: str,
    body: EndpointUpdate,
    request: Request,
    caller: AppCaller,
    session: DbSession,
    clock: AppClock,
) -> EndpointOut:
    """Change the URL, the events or the description; what is left out stays (a deleted
    endpoint: 409 webhook_endpoint_deleted). The secret is not shown."""
    if body.url is not None:
        _check_target(request, body.url)
    return EndpointOut.of(service.update_endpoint(session, caller, endpoint_id, body, clock.now()))


@router.delete("/{endpoint_id}", response_model=Deleted)
def delete_endpoint(
    endpoint_id: str, caller: AppCaller, session: DbSession, clock: AppClock
) -> Deleted:
    """Stop sending to this endpoint."""
    return Deleted(id=service.delete_endpoint(session, caller, endpoint_id, clock.now()).id)


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointOut)
def rotate_secret(
    endpoint_id: str,
    caller: AppCaller,
    session: DbSession,
    clock: AppClock,
    box: Box,
    body: SecretRotation | None = None,
) -> EndpointOut:
    """A new signing secret (shown once); the old one also signs during the grace period, and
    earlier ones during what is left of theirs (at most 10 old secrets at once)."""
    grace = (body or SecretRotation()).grace_period_s
    endpoint, secret = service.rotate_secret(session, box, caller, endpoint_id, grace, clock.now())
    return EndpointOut.of(endpoint, secret)


@router.get("/{endpoint_id}/deliveries", response_model=Page[DeliveryOut])
def list_deliveries(
    endpoint_id: str,
    caller: AppCaller,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    delivery_status: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this status")
    ] = None,
) -> Page[DeliveryOut]:
    """Every delivery to this endpoint, newest first, each with its logged attempts."""
    found, has_more = service.list_deliveries(
        session, caller, endpoint_id, params, status=delivery_status
    )
    return Page[DeliveryOut](data=[DeliveryOut.of(d, a) for d, a in found], has_more=has_more)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut)
def redeliver(
    endpoint_id: str, delivery_id: str, caller: AppCaller, session: DbSession, clock: AppClock
) -> DeliveryOut:
    """Send a delivery again now."""
    delivery = service.redeliver(session, caller, endpoint_id, delivery_id, clock.now())
    return DeliveryOut.of(delivery, service.attempts_of(session, delivery.id))


@events_router.get("", response_model=Page[EventOut])
def list_events(
    caller: AppCaller,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    event_type: Annotated[
        EventType | None, Query(alias="type", description="Only events of this type")
    ] = None,
) -> Page[EventOut]:
    """The app's events, newest first, as their webhooks carry them: what an app that missed
    deliveries (or has no endpoint) reads to catch up."""
    payloads, has_more = service.list_events(session, caller, params, event_type=event_type)
    return Page[EventOut](data=[EventOut.of(p) for p in payloads], has_more=has_more)


@events_router.get("/{event_id}", response_model=EventOut)
def read_event(event_id: str, caller: AppCaller, session: DbSession) -> EventOut:
    """One of the app's events, as its webhooks carry it."""
    return EventOut.of(service.get_event(session, caller, event_id))
