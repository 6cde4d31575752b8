"""The app's events (`GET /v1/events`), an endpoint changed in place (`PATCH`), and the
delivery log filtered by status: what an integrator needs to catch up after missed webhooks
and to move a receiver without losing events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.worker.runner import Worker
from tests.builders import Builders, Shop
from tests.webhooks.receiver import receiver


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


@pytest.fixture
def worker(app: FastAPI, settings: Settings, database: Database, clock: FrozenClock) -> Worker:
    tuned = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"webhook_timeout_s": 2})}
    )
    return Worker(tuned, database, clock, app.state.channel_registry)


def _pump(worker: Worker) -> None:
    """Every event to its deliveries, and each delivery sent (one per order at a time)."""
    while worker.dispatcher.run_once() + worker.deliverer.run_once():
        pass


def _endpoint(shop: Shop, url: str, events: list[str]) -> dict[str, Any]:
    created = shop.client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": events}, headers=shop.app.headers
    )
    assert created.status_code == 201, created.text
    endpoint: dict[str, Any] = created.json()
    return endpoint


def _same_event(api: dict[str, Any], delivered: dict[str, Any]) -> None:
    """The API's event is the delivered one (its time may be written with another suffix)."""
    assert {k: v for k, v in api.items() if k != "created"} == {
        k: v for k, v in delivered.items() if k != "created"
    }
    as_time = [
        datetime.fromisoformat(e["created"].replace("Z", "+00:00")) for e in (api, delivered)
    ]
    assert as_time[0] == as_time[1]


def test_an_app_reads_its_events_as_its_webhooks_carried_them(shop: Shop, worker: Worker) -> None:
    with receiver() as hooks:
        _endpoint(shop, hooks.url, ["*"])
        order = shop.order()
        shop.confirm(shop.pay(order))
        _pump(worker)
        delivered = {event["id"]: event for event in hooks.events()}
    listed = shop.client.get("/v1/events", params={"limit": 100}, headers=shop.app.headers)
    assert listed.status_code == 200, listed.text
    events = listed.json()["data"]
    assert {e["id"] for e in events} == set(delivered)
    assert [e["id"] for e in events] == sorted(delivered, reverse=True)  # newest first
    for event in events:
        _same_event(event, delivered[event["id"]])
        one = shop.client.get(f"/v1/events/{event['id']}", headers=shop.app.headers)
        assert one.status_code == 200
        _same_event(one.json(), delivered[event["id"]])
    paid = shop.client.get("/v1/events", params={"type": "order.paid"}, headers=shop.app.headers)
    [order_paid] = paid.json()["data"]
    assert order_paid["data"]["object"]["id"] == order["id"]
    # Paging: one at a time, in the same order, until has_more is false.
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"starting_after": cursor} if cursor else {})}
        page = shop.client.get("/v1/events", params=params, headers=shop.app.headers).json()
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = seen[-1]
    assert seen == [e["id"] for e in events]


def test_another_apps_events_stay_theirs(shop: Shop, build: Builders) -> None:
    shop.confirm(shop.pay(shop.order()))
    [event, *_] = shop.client.get("/v1/events", headers=shop.app.headers).json()["data"]
    other = build.app("other")
    missing = shop.client.get(f"/v1/events/{event['id']}", headers=other.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "event_not_found"
    assert shop.client.get("/v1/events", headers=other.headers).json()["data"] == []
    assert shop.client.get("/v1/events", headers=shop.buyer.headers).status_code == 403
    admin = build.staff(Role.ADMIN)
    assert shop.client.get("/v1/events", headers=admin.headers).status_code == 403
    unknown = shop.client.get(
        "/v1/events", params={"type": "order.eaten"}, headers=shop.app.headers
    )
    assert unknown.status_code == 422


def test_an_endpoint_changed_in_place_takes_the_new_events_and_url_from_then_on(
    shop: Shop, worker: Worker, build: Builders
) -> None:
    with receiver() as first, receiver() as second:
        endpoint = _endpoint(shop, first.url, ["order.paid"])
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        changed = shop.client.patch(
            path,
            json={"url": second.url, "events": ["refund.succeeded", "order.paid"]},
            headers=shop.app.headers,
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert (body["url"], body["events"], body["secret"]) == (
            second.url,
            ["order.paid", "refund.succeeded"],
            None,
        )
        order = shop.order()
        shop.confirm(shop.pay(order))
        _pump(worker)
        assert first.received == []
        assert [e["type"] for e in second.events()] == ["order.paid"]
        # Only refunds from now on: the next order's payment is not sent.
        assert (
            shop.client.patch(
                path, json={"events": ["refund.succeeded"]}, headers=shop.app.headers
            ).json()["url"]
            == second.url  # left out, kept
        )
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
        assert [e["type"] for e in second.events()] == ["order.paid"]
    audit = shop.client.get(
        "/v1/admin/audit",
        params={"action": "webhook_endpoint.updated", "object_id": endpoint["id"]},
        headers=build.staff(Role.ADMIN).headers,
    ).json()["data"]
    assert len(audit) == 2
    assert any(record["after"].get("url") == second.url for record in audit)


def test_a_description_is_set_kept_and_cleared(shop: Shop) -> None:
    endpoint = _endpoint(shop, "https://hooks.example.com/in", ["*"])
    path = f"/v1/webhook-endpoints/{endpoint['id']}"

    def patch(body: dict[str, Any]) -> Any:
        answer = shop.client.patch(path, json=body, headers=shop.app.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()["description"]

    assert patch({"description": "orders to the CRM"}) == "orders to the CRM"
    assert patch({"events": ["order.paid"]}) == "orders to the CRM"
    assert patch({"description": None}) is None
    assert patch({"description": "again"}) == "again"
    assert patch({"description": ""}) is None


@pytest.mark.parametrize(
    "body",
    [
        {"url": None},
        {"events": None},
        {"events": []},
        {"events": ["order.eaten"]},
        {"url": "ftp://example.com/x"},
        {"url": "https://user:pw@hooks.example.com/x"},
        {"secret": "mine"},
    ],
)
def test_a_bad_change_is_422_and_changes_nothing(shop: Shop, body: dict[str, Any]) -> None:
    endpoint = _endpoint(shop, "https://hooks.example.com/in", ["order.paid"])
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    refused = shop.client.patch(path, json=body, headers=shop.app.headers)
    assert refused.status_code == 422, refused.text
    after = shop.client.get(path, headers=shop.app.headers).json()
    assert (after["url"], after["events"]) == ("https://hooks.example.com/in", ["order.paid"])


def test_only_the_owner_changes_a_live_endpoint(shop: Shop, build: Builders) -> None:
    endpoint = _endpoint(shop, "https://hooks.example.com/in", ["order.paid"])
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    change = {"events": ["*"]}
    other = build.app("other")
    assert shop.client.patch(path, json=change, headers=other.headers).status_code == 404
    assert shop.client.patch(path, json=change, headers=shop.buyer.headers).status_code == 403
    assert shop.client.delete(path, headers=shop.app.headers).status_code == 200
    deleted = shop.client.patch(path, json=change, headers=shop.app.headers)
    assert deleted.status_code == 409
    assert deleted.json()["code"] == "webhook_endpoint_deleted"


def test_production_refuses_a_private_url_in_a_change_too(
    app: FastAPI, client: TestClient, shop: Shop, settings: Settings
) -> None:
    endpoint = _endpoint(shop, "https://hooks.example.com/in", ["order.paid"])
    app.state.settings = settings.model_copy(
        update={"environment": "production", "webhook_private_targets": None}
    )
    try:
        refused = client.patch(
            f"/v1/webhook-endpoints/{endpoint['id']}",
            json={"url": "https://127.0.0.1/hooks"},
            headers=shop.app.headers,
        )
    finally:
        app.state.settings = settings
    assert refused.status_code == 422
    assert refused.json()["code"] == "webhook_url_not_allowed"


def test_the_delivery_log_filters_by_status(shop: Shop, worker: Worker) -> None:
    with receiver(lambda n: (500, 0) if n == 1 else (200, 0)) as hooks:
        endpoint = _endpoint(shop, hooks.url, ["order.paid"])
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)  # the first answer is a 500: still pending
        shop.confirm(shop.pay(shop.order()))
        _pump(worker)
    path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

    def listed(status: str | None) -> list[str]:
        params = {"status": status} if status else {}
        page = shop.client.get(path, params=params, headers=shop.app.headers)
        assert page.status_code == 200, page.text
        return [d["status"] for d in page.json()["data"]]

    assert sorted(listed(None)) == ["pending", "succeeded"]
    assert listed("pending") == ["pending"]
    assert listed("succeeded") == ["succeeded"]
    assert listed("failed") == []
    bad = shop.client.get(path, params={"status": "sent"}, headers=shop.app.headers)
    assert bad.status_code == 422
