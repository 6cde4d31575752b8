"""Webhook endpoints: subscriptions, a secret shown once, rotation with a grace period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.migrations import alembic_config, upgrade
from knowpay.webhooks import service
from knowpay.webhooks.models import WebhookEndpoint
from knowpay.webhooks.schemas import ALL_EVENTS, EVENT_TYPES
from tests.builders import Builders, Caller

URL = "https://www.example.com/knowpay/hooks"


@pytest.fixture
def app_caller(build: Builders) -> Caller:
    return build.app()


def _create(
    client: TestClient, caller: Caller, events: list[str] | None = None
) -> dict[str, object]:
    response = client.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "events": events or ["order.paid"]},
        headers=caller.headers,
    )
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _rotate(client: TestClient, caller: Caller, endpoint_id: object, grace_s: int) -> str:
    rotated = client.post(
        f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        json={"grace_period_s": grace_s},
        headers=caller.headers,
    )
    assert rotated.status_code == 200, rotated.text
    secret: str = rotated.json()["secret"]
    return secret


def test_the_secret_is_shown_once(client: TestClient, app_caller: Caller) -> None:
    created = _create(client, app_caller, ["order.paid", "refund.succeeded", "order.paid"])
    assert str(created["secret"]).startswith("whsec_")
    assert created["events"] == ["order.paid", "refund.succeeded"]
    read = client.get(f"/v1/webhook-endpoints/{created['id']}", headers=app_caller.headers).json()
    assert read["secret"] is None
    listed = client.get("/v1/webhook-endpoints", headers=app_caller.headers)
    assert str(created["secret"]) not in listed.text


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x", "events": ["order.paid"]},
        {"url": URL, "events": ["order.eaten"]},
        {"url": URL, "events": []},
        {"url": URL},
        {"url": URL, "events": ["*"], "secret": "mine"},
        # Found by a webhook audit: accepted, then retried for days or shown back.
        {"url": "http://:80/hooks", "events": ["*"]},  # no host
        {"url": "http://127.0.0.1:99999/hooks", "events": ["*"]},
        {"url": "http://127.0.0.1:0/hooks", "events": ["*"]},
        {"url": "https://hooks.example.com:http/x", "events": ["*"]},
        {"url": "https://user:secret@hooks.example.com/x", "events": ["*"]},
        # Found by fuzzing the running demo: accepted, then every delivery raised in the worker
        # (not an answer, not recorded) and was sent again whenever its lease ran out.
        {"url": "https://" + "0" * 64 + "/hooks", "events": ["*"]},  # a label of 64 characters
        {"url": "https://hooks..example.com/x", "events": ["*"]},  # an empty label
        {"url": "https://\uff48ooks.example.com/x", "events": ["*"]},  # no IDNA host name
    ],
)
def test_bad_endpoints_are_422(
    client: TestClient, app_caller: Caller, body: dict[str, object]
) -> None:
    response = client.post("/v1/webhook-endpoints", json=body, headers=app_caller.headers)
    assert response.status_code == 422
    assert client.get("/v1/webhook-endpoints", headers=app_caller.headers).json()["data"] == []


def test_a_password_stored_in_an_endpoint_url_before_they_were_refused_is_not_shown(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    created = _create(client, app_caller)
    with database.session_scope() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == created["id"])
            .values(url="https://hooks:s3cret@hooks.example.com/in")
        )
    listed = client.get("/v1/webhook-endpoints", headers=app_caller.headers)
    assert "s3cret" not in listed.text
    assert listed.json()["data"][0]["url"] == "https://hooks:***@hooks.example.com/in"


def test_an_app_sees_only_its_endpoints(
    client: TestClient, app_caller: Caller, build: Builders
) -> None:
    created = _create(client, app_caller)
    other = build.app("other")
    assert (
        client.get(f"/v1/webhook-endpoints/{created['id']}", headers=other.headers).status_code
        == 404
    )
    assert (
        client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=other.headers).status_code
        == 404
    )
    assert client.get("/v1/webhook-endpoints", headers=other.headers).json()["data"] == []
    buyer = build.buyer(app_caller)
    assert client.get("/v1/webhook-endpoints", headers=buyer.headers).status_code == 403


def test_delete_stops_the_endpoint(client: TestClient, app_caller: Caller) -> None:
    created = _create(client, app_caller)
    response = client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=app_caller.headers)
    assert response.json() == {"object": "webhook_endpoint", "id": created["id"], "deleted": True}
    assert client.get("/v1/webhook-endpoints", headers=app_caller.headers).json()["data"] == []
    assert (
        client.get(f"/v1/webhook-endpoints/{created['id']}", headers=app_caller.headers).json()[
            "status"
        ]
        == "deleted"
    )


def test_rotation_returns_a_new_secret(client: TestClient, app_caller: Caller) -> None:
    created = _create(client, app_caller)
    rotated = _rotate(client, app_caller, created["id"], 3600)
    assert rotated.startswith("whsec_")
    assert rotated != created["secret"]


def test_the_schema_lists_every_event_an_endpoint_may_subscribe_to(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    events = schemas["EndpointCreate"]["properties"]["events"]

    assert events["items"]["enum"] == sorted(EVENT_TYPES | {ALL_EVENTS})


def test_migration_0015_moves_the_previous_secret_into_the_list_and_back(
    client: TestClient, app_caller: Caller, database: Database, app: FastAPI, clock: FrozenClock
) -> None:
    created = _create(client, app_caller)
    rotated = _rotate(client, app_caller, created["id"], 3600)
    config = alembic_config(database.engine)

    command.downgrade(config, "20261127_0014")  # one previous secret, in its two columns
    with database.engine.connect() as connection:
        sealed, expires_at = connection.execute(
            text(
                "SELECT previous_secret_sealed, previous_secret_expires_at"
                " FROM webhook_endpoints WHERE id = :id"
            ),
            {"id": created["id"]},
        ).one()
    assert sealed
    assert str(expires_at).startswith("2026-01-01 13:00:00")
    upgrade(database.engine)

    with database.session_scope(read_only=True) as session:
        endpoint = session.get(WebhookEndpoint, created["id"])
        assert endpoint is not None
        box = app.state.secret_box
        assert service.signing_secrets(box, endpoint, clock.now()) == [
            rotated,
            created["secret"],
        ]
        later = clock.now() + timedelta(hours=1)
        assert service.signing_secrets(box, endpoint, later) == [rotated]


def test_at_most_ten_old_secrets_sign_beside_the_current_one(
    client: TestClient, app_caller: Caller, database: Database, app: FastAPI, clock: FrozenClock
) -> None:
    created = _create(client, app_caller)
    secrets = [str(created["secret"])]
    for grace_s in range(3600, 3600 + 12):  # each later one is kept longer
        secrets.append(_rotate(client, app_caller, created["id"], grace_s))
    with database.session_scope(read_only=True) as session:
        endpoint = session.get(WebhookEndpoint, created["id"])
        assert endpoint is not None
        signing = service.signing_secrets(app.state.secret_box, endpoint, clock.now())
    assert signing == [secrets[-1], *secrets[-11:-1]]  # the two that stop first are gone
