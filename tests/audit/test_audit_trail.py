"""The audit trail: every money state change and staff action leaves a record naming the
actor, the request and the client IP, searchable by staff through /v1/admin/audit."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from knowpay.audit import service as audit
from knowpay.audit.models import AuditRecord
from knowpay.auth.principals import Role
from knowpay.cli.main import app as cli
from knowpay.kit import context
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.db import Database
from tests.builders import Builders, Caller, Shop


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def _audit(client: TestClient, caller: Caller, **filters: Any) -> dict[str, Any]:
    response = client.get("/v1/admin/audit", params=filters, headers=caller.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _records(client: TestClient, caller: Caller, **filters: Any) -> list[dict[str, Any]]:
    return list(_audit(client, caller, limit=100, **filters)["data"])


def test_a_payment_and_refund_flow_leaves_who_what_when_and_from_where(
    shop: Shop, build: Builders, client: TestClient, clock: FrozenClock
) -> None:
    order = shop.order()
    paying = client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "test"},
        headers={**shop.app.headers, "X-Request-Id": "req-audit-pay-0001"},
    )
    assert paying.status_code == 201, paying.text
    payment = paying.json()
    confirmed = client.post(
        f"/sandbox/test/payments/{payment['id']}/confirm",
        json={},
        headers={"X-Request-Id": "req-audit-notify-0001"},
    )
    assert confirmed.status_code == 200, confirmed.text

    clock.advance(timedelta(days=8))  # past the automatic-approval window: finance decides
    buyer = build.relogin(shop.buyer)
    asked = client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "not_as_described"},
        headers={**buyer.headers, "X-Request-Id": "req-audit-refund-0001"},
    )
    assert asked.status_code == 201, asked.text
    refund = asked.json()
    assert refund["status"] == "pending_approval"
    finance = build.staff(Role.FINANCE)
    approved = client.post(
        f"/v1/refunds/{refund['id']}/approve",
        headers={**finance.headers, "X-Request-Id": "req-audit-approve-0001"},
    )
    assert approved.json()["status"] == "succeeded"

    support = build.staff(Role.SUPPORT)
    [captured] = _records(client, support, object_id=payment["id"])
    assert captured["action"] == "payment.succeeded"
    assert captured["actor"] == "gateway:test"
    assert captured["request_id"] == "req-audit-notify-0001"
    assert captured["ip"] == "testclient"
    assert captured["before"] == {"status": "pending"}
    assert captured["after"]["status"] == "succeeded"
    assert captured["after"]["amount"] == 9900
    assert captured["after"]["currency"] == "CNY"
    assert captured["position"] is None  # sealed later by the worker or `audit verify`

    order_trail = _records(client, support, object_type="order", object_id=order["id"])
    assert [(r["action"], r["before"]["status"], r["after"]["status"]) for r in order_trail] == [
        ("order.refunded", "paid", "refunded"),
        ("order.paid", "created", "paid"),
    ]
    refund_trail = _records(client, support, object_type="refund", object_id=refund["id"])
    assert [(r["action"], r["actor"], r["request_id"]) for r in reversed(refund_trail)] == [
        ("refund.created", f"buyer:{shop.buyer.id}", "req-audit-refund-0001"),
        ("refund.approved", f"staff:{finance.id}", "req-audit-approve-0001"),
        ("refund.succeeded", f"staff:{finance.id}", "req-audit-approve-0001"),
    ]
    approval = refund_trail[1]
    assert approval["before"] == {"status": "pending_approval"}
    assert approval["after"]["status"] == "processing"
    assert approval["after"]["amount"] == 9900
    assert all(r["ip"] == "testclient" for r in refund_trail)


def test_staff_and_key_actions_are_audited_without_secrets(
    shop: Shop, build: Builders, client: TestClient
) -> None:
    admin = build.staff(Role.ADMIN)
    created = client.post("/v1/admin/apps", json={"name": "mini-program"}, headers=admin.headers)
    assert created.status_code == 201
    app = created.json()
    endpoint = client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://example.com/hooks", "events": ["order.paid"]},
        headers=shop.app.headers,
    ).json()
    rotated = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=shop.app.headers
    ).json()

    records = _records(client, admin)
    by_action = {(r["action"], r["object_id"]): r for r in records}
    assert by_action[("staff.created", admin.id)]["after"] == {"role": "admin"}
    assert by_action[("app.created", app["id"])]["actor"] == f"staff:{admin.id}"
    assert by_action[("api_key.created", app["api_key_id"])]["actor"] == f"staff:{admin.id}"
    made = by_action[("webhook_endpoint.created", endpoint["id"])]
    assert made["actor"] == f"app:{shop.app.id}"
    turned = by_action[("webhook_endpoint.secret_rotated", endpoint["id"])]
    assert turned["actor"] == f"app:{shop.app.id}"
    text = str(records)
    for secret in (app["api_key"], endpoint["secret"], rotated["secret"]):
        assert secret not in text
    assert admin.email not in text  # no PII beyond ids


def test_the_admin_endpoint_filters_pages_newest_first_and_is_for_staff_only(
    shop: Shop, build: Builders, client: TestClient, clock: FrozenClock
) -> None:
    start = clock.now()
    first = shop.order()
    shop.confirm(shop.pay(first))
    clock.advance(timedelta(hours=1))
    second = shop.order()
    shop.confirm(shop.pay(second))
    admin, finance, support = (build.staff(r) for r in (Role.ADMIN, Role.FINANCE, Role.SUPPORT))

    for caller in (admin, finance, support):
        assert client.get("/v1/admin/audit", headers=caller.headers).status_code == 200
    assert client.get("/v1/admin/audit", headers=shop.app.headers).status_code == 403
    buyer = build.relogin(shop.buyer)
    assert client.get("/v1/admin/audit", headers=buyer.headers).status_code == 403
    assert client.get("/v1/admin/audit").status_code == 401

    paid = _records(client, support, action="order.paid")
    assert [r["object_id"] for r in paid] == [second["id"], first["id"]]  # newest first
    assert _records(client, support, action="order.paid", object_id=first["id"]) == [paid[1]]
    later = _records(
        client,
        support,
        action="order.paid",
        created_gte=(start + timedelta(minutes=30)).isoformat(),
    )
    assert [r["object_id"] for r in later] == [second["id"]]
    earlier = _records(
        client, support, action="order.paid", created_lt="2026-01-01T12:30:00"
    )  # no offset: read as UTC
    assert [r["object_id"] for r in earlier] == [first["id"]]
    assert {r["actor"] for r in _records(client, support, actor="gateway:test")} == {"gateway:test"}
    assert _records(client, support, object_type="payment", actor="nobody") == []
    one_request = paid[0]["request_id"]
    assert one_request
    assert {r["request_id"] for r in _records(client, support, request_id=one_request)} == {
        one_request
    }

    page = _audit(client, support, limit=2)
    assert len(page["data"]) == 2
    assert page["has_more"] is True
    rest = _audit(client, support, limit=100, starting_after=page["data"][-1]["id"])
    all_ids = [r["id"] for r in _records(client, support)]
    assert [r["id"] for r in page["data"]] + [r["id"] for r in rest["data"]] == all_ids
    assert all_ids == sorted(all_ids, reverse=True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("created_lt", "9999-12-31T23:59:59-01:00"),
        ("created_gte", "9999-12-31T23:30:00-05:00"),
        ("created_gte", "0001-01-01T00:30:00+01:00"),
        ("created_lt", "9999-12-31T23:59:59"),
        ("created_gte", "1969-12-31T23:59:59Z"),
    ],
)
def test_a_time_filter_beyond_1970_to_9999_12_31_is_a_422_naming_it_not_a_500(
    build: Builders, client: TestClient, name: str, value: str
) -> None:
    support = build.staff(Role.SUPPORT)
    answer = client.get("/v1/admin/audit", params={name: value}, headers=support.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == [name]
    edges = {"created_gte": "1970-01-01T08:00:00+08:00", "created_lt": "9999-12-31T00:00:00Z"}
    assert _audit(client, support, **edges)["data"]  # the edges themselves are kept


def test_a_record_commits_or_rolls_back_with_its_transaction(database: Database) -> None:
    with database.session_scope() as session:
        audit.record(session, action="test.kept", object_type="thing", object_id="t1")

    def fail_after_recording() -> None:
        with database.session_scope() as session:
            audit.record(session, action="test.lost", object_type="thing", object_id="t2")
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        fail_after_recording()
    with database.session_scope(read_only=True) as session:
        actions = session.scalars(select(AuditRecord.action)).all()
    assert actions == ["test.kept"]


def test_outside_a_request_the_actor_is_system_or_who_the_block_names(
    database: Database,
) -> None:
    with database.session_scope() as session:
        background = audit.record(session, action="a", object_type="t", object_id="1")
        with context.acting_as("cli:alice"):
            operator = audit.record(session, action="b", object_type="t", object_id="2")
        context.set_actor("ignored")  # nothing bound: background work stays system
        after = audit.record(session, action="c", object_type="t", object_id="3")
    with database.session_scope(read_only=True) as session:
        records = {r.id: r for r in session.scalars(select(AuditRecord))}
    assert [records[i].actor for i in (background, operator, after)] == [
        "system",
        "cli:alice",
        "system",
    ]
    assert records[background].request_id is None
    assert records[background].ip is None


def test_staff_created_from_the_cli_is_audited_as_the_operator(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KNOWPAY_PASSWORD_HASH__TIME_COST", "1")
    monkeypatch.setenv("KNOWPAY_PASSWORD_HASH__MEMORY_COST_KIB", "64")
    monkeypatch.setenv("KNOWPAY_PASSWORD_HASH__PARALLELISM", "1")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli,
            ["users", "create-staff", "--email", "ops@example.com", "--role", "finance", "--json"],
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    staff_id = json.loads(result.output)["id"]
    with database.session_scope(read_only=True) as session:
        [record] = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "staff.created")
        ).all()
    assert record.object_id == staff_id
    assert record.actor.startswith("cli:")
    assert json.loads(record.after_json or "{}") == {"role": "finance"}
    assert "ops@example.com" not in (record.after_json or "")
