"""Webhook endpoints: create, list, update, delete, rotate the secret; deliveries: list,
redeliver; the app's events. Never commits."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.audit import service as audit
from knowpay.auth.principals import Principal
from knowpay.kit.crypto import SecretBox
from knowpay.kit.ids import new_id
from knowpay.kit.outbox_models import OutboxEvent
from knowpay.kit.pagination import PageParams, page_of
from knowpay.webhooks.errors import (
    DeliveryNotFound,
    EndpointDeleted,
    EndpointNotFound,
    EventNotFound,
)
from knowpay.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from knowpay.webhooks.schemas import EndpointCreate, EndpointUpdate

MAX_PREVIOUS_SECRETS = 10
"""Old secrets signing at once, at most (repeated rotations within their grace periods)."""


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _sealing_context(endpoint_id: str) -> str:
    """What a sealed secret is bound to: this endpoint (current and previous secret alike)."""
    return f"webhook_endpoint:{endpoint_id}"


def create_endpoint(
    session: Session, box: SecretBox, caller: Principal, body: EndpointCreate, now: datetime
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once; stored encrypted)."""
    secret = _new_secret()
    endpoint_id = new_id("we")
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        app_id=caller.id,
        url=body.url,
        events_json=json.dumps(body.events),
        description=body.description,
        secret_sealed=box.seal(secret, context=_sealing_context(endpoint_id)),
        created_at=now,
    )
    session.add(endpoint)
    session.flush()
    audit.record(
        session,
        action="webhook_endpoint.created",
        object_type="webhook_endpoint",
        object_id=endpoint.id,
        after={"app_id": endpoint.app_id, "url": endpoint.url, "events": body.events},
        now=now,
    )
    return endpoint, secret


def get_endpoint(
    session: Session, caller: Principal, endpoint_id: str, *, for_update: bool = False
) -> WebhookEndpoint:
    """One of the caller's endpoints (404 for anyone else's)."""
    statement = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        statement = statement.with_for_update()
    endpoint = session.scalars(statement).first()
    if endpoint is None or (endpoint.app_id != caller.id and not caller.is_staff):
        raise EndpointNotFound(f"No such webhook endpoint: {endpoint_id}")
    return endpoint


def _live_endpoint(
    session: Session, caller: Principal, endpoint_id: str, *, for_update: bool = False
) -> WebhookEndpoint:
    """One of the caller's endpoints that is not deleted (409 when it is: nothing is sent to
    it any more, so it takes no new secret and no redelivery)."""
    endpoint = get_endpoint(session, caller, endpoint_id, for_update=for_update)
    if endpoint.deleted_at is not None:
        raise EndpointDeleted(f"Webhook endpoint {endpoint_id} was deleted.")
    return endpoint


def list_endpoints(
    session: Session, caller: Principal, params: PageParams
) -> tuple[list[WebhookEndpoint], bool]:
    """The caller's live endpoints, newest first."""
    statement = select(WebhookEndpoint).where(
        WebhookEndpoint.app_id == caller.id, WebhookEndpoint.deleted_at.is_(None)
    )
    return page_of(session, statement, WebhookEndpoint.id, params)


def update_endpoint(
    session: Session, caller: Principal, endpoint_id: str, body: EndpointUpdate, now: datetime
) -> WebhookEndpoint:
    """Change an endpoint's URL, events or description; what is left out stays. Deliveries
    already queued keep their events and go to the URL the endpoint has when they are sent."""
    endpoint = _live_endpoint(session, caller, endpoint_id, for_update=True)
    before = _described(endpoint)
    if body.url is not None:
        endpoint.url = body.url
    if body.events is not None:
        endpoint.events_json = json.dumps(body.events)
    if "description" in body.model_fields_set:
        endpoint.description = body.description or None
    after = _described(endpoint)
    if after != before:
        audit.record(
            session,
            action="webhook_endpoint.updated",
            object_type="webhook_endpoint",
            object_id=endpoint.id,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
            now=now,
        )
    return endpoint


def _described(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "url": endpoint.url,
        "events": json.loads(endpoint.events_json),
        "description": endpoint.description,
    }


def delete_endpoint(
    session: Session, caller: Principal, endpoint_id: str, now: datetime
) -> WebhookEndpoint:
    """Stop sending to an endpoint; its pending deliveries are dropped, its log is kept."""
    endpoint = get_endpoint(session, caller, endpoint_id, for_update=True)
    if endpoint.deleted_at is None:
        endpoint.deleted_at = now
        pending = select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == "pending"
        )
        for delivery in session.scalars(pending).all():
            delivery.status, delivery.finished_at = "cancelled", now
        audit.record(
            session,
            action="webhook_endpoint.deleted",
            object_type="webhook_endpoint",
            object_id=endpoint.id,
            before={"status": "enabled"},
            after={"status": "deleted"},
            now=now,
        )
    return endpoint


@dataclass(frozen=True, slots=True)
class _OldSecret:
    """An earlier secret (sealed) that keeps signing until `expires_at`."""

    sealed: str
    expires_at: datetime


def _old_secrets(endpoint: WebhookEndpoint) -> list[_OldSecret]:
    return [
        _OldSecret(item["sealed"], datetime.fromisoformat(item["expires_at"]))
        for item in json.loads(endpoint.previous_secrets_json or "[]")
    ]


def _keep_old_secrets(endpoint: WebhookEndpoint, old: list[_OldSecret]) -> None:
    endpoint.previous_secrets_json = json.dumps(
        [{"sealed": s.sealed, "expires_at": s.expires_at.isoformat()} for s in old]
    )


def rotate_secret(
    session: Session,
    box: SecretBox,
    caller: Principal,
    endpoint_id: str,
    grace_period_s: int,
    now: datetime,
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one keeps signing beside it for the grace period, and so do
    earlier ones still in theirs. A grace period of 0 stops every old secret at once."""
    endpoint = _live_endpoint(session, caller, endpoint_id, for_update=True)
    secret = _new_secret()
    kept: list[_OldSecret] = []
    if grace_period_s > 0:
        kept = [s for s in _old_secrets(endpoint) if s.expires_at > now]
        kept.append(_OldSecret(endpoint.secret_sealed, now + timedelta(seconds=grace_period_s)))
        # Each one adds a signature to every delivery's header: past the cap, those that
        # would stop first go now.
        kept = sorted(kept, key=lambda s: s.expires_at)[-MAX_PREVIOUS_SECRETS:]
    _keep_old_secrets(endpoint, kept)
    endpoint.secret_sealed = box.seal(secret, context=_sealing_context(endpoint.id))
    audit.record(
        session,
        action="webhook_endpoint.secret_rotated",
        object_type="webhook_endpoint",
        object_id=endpoint.id,
        after={"grace_period_s": grace_period_s, "old_secrets_signing": len(kept)},
        now=now,
    )
    return endpoint, secret


def signing_secrets(box: SecretBox, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and each old one during its grace period."""
    context = _sealing_context(endpoint.id)
    found = [box.open(endpoint.secret_sealed, context=context)]
    found += [
        box.open(old.sealed, context=context)
        for old in _old_secrets(endpoint)
        if old.expires_at > now
    ]
    return found


def reseal_secrets(session: Session, opener: SecretBox, sealer: SecretBox) -> int:
    """Re-encrypt every endpoint's secrets (deleted ones too) from `opener`'s keys to
    `sealer`'s, for `knowpay secrets rotate`; returns how many values were re-sealed."""
    count = 0
    for endpoint in session.scalars(
        select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()
    ).all():
        context = _sealing_context(endpoint.id)
        endpoint.secret_sealed = opener.reseal(endpoint.secret_sealed, context=context, into=sealer)
        count += 1
        old = [
            replace(s, sealed=opener.reseal(s.sealed, context=context, into=sealer))
            for s in _old_secrets(endpoint)
        ]
        _keep_old_secrets(endpoint, old)
        count += len(old)
    return count


def list_deliveries(
    session: Session,
    caller: Principal,
    endpoint_id: str,
    params: PageParams,
    *,
    status: str | None = None,
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], bool]:
    """An endpoint's deliveries (of one status, when given), newest first, with their
    attempts; and whether there are more."""
    endpoint = get_endpoint(session, caller, endpoint_id)
    statement = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    deliveries, has_more = page_of(session, statement, WebhookDelivery.id, params)
    return [(d, attempts_of(session, d.id)) for d in deliveries], has_more


def attempts_of(session: Session, delivery_id: str) -> list[WebhookAttempt]:
    statement = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.id)
    )
    return list(session.scalars(statement).all())


def redeliver(
    session: Session, caller: Principal, endpoint_id: str, delivery_id: str, now: datetime
) -> WebhookDelivery:
    """Send a delivery again now, whatever became of it before. The endpoint stays locked
    until the delivery is queued, so a delete cannot slip in between and leave it queued."""
    endpoint = _live_endpoint(session, caller, endpoint_id, for_update=True)
    delivery = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id)
        .with_for_update()
    ).first()
    if delivery is None:
        raise DeliveryNotFound(f"No such delivery: {delivery_id}")
    delivery.status, delivery.finished_at = "pending", None
    delivery.next_attempt_at, delivery.leased_until, delivery.lease_token = now, None, None
    return delivery


def list_events(
    session: Session, caller: Principal, params: PageParams, *, event_type: str | None = None
) -> tuple[list[str], bool]:
    """The app's events (of one type, when given), newest first, as their stored envelopes;
    and whether there are more."""
    statement = select(OutboxEvent.payload).where(OutboxEvent.app_id == caller.id)
    if event_type is not None:
        statement = statement.where(OutboxEvent.type == event_type)
    return page_of(session, statement, OutboxEvent.id, params)


def get_event(session: Session, caller: Principal, event_id: str) -> str:
    """One of the app's events as its stored envelope (404 for anyone else's)."""
    payload = session.scalars(
        select(OutboxEvent.payload).where(
            OutboxEvent.id == event_id, OutboxEvent.app_id == caller.id
        )
    ).first()
    if payload is None:
        raise EventNotFound(f"No such event: {event_id}")
    return payload
