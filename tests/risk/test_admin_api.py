"""/v1/admin/risk over HTTP: rules as data (validated per kind, nothing stored on bad input),
the blacklist, the review queue with release and reject, and staff-only access."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from knowpay.audit.models import AuditRecord
from knowpay.auth.principals import Role
from knowpay.kit.db import Database
from knowpay.risk.endpoints import router
from knowpay.risk.models import RiskAttemptRecord, RiskBlacklistEntry, RiskDecision, RiskRule
from tests.builders import Builders, Caller
from tests.risk.conftest import FakeReleaser, ReleaseRefused, Risk

pytestmark = pytest.mark.db

VELOCITY = {
    "kind": "velocity",
    "action": "deny",
    "params": {"subject": "buyer", "max_attempts": 5, "window_s": 60},
}


@pytest.fixture
def finance(build: Builders) -> Caller:
    return build.staff(Role.FINANCE)


@pytest.fixture
def support(build: Builders) -> Caller:
    return build.staff(Role.SUPPORT)


def _count(database: Database, model: type[Any]) -> int:
    with database.session_scope(read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


# Rules


def test_finance_creates_reads_changes_and_disables_a_rule(
    client: TestClient, finance: Caller, support: Caller, risk: Risk
) -> None:
    rule = _ok(client.post("/v1/admin/risk/rules", json=VELOCITY, headers=finance.headers), 201)
    assert rule["object"] == "risk_rule"
    assert rule["id"].startswith("rrule_")
    assert (rule["kind"], rule["action"], rule["enabled"]) == ("velocity", "deny", True)
    assert rule["params"] == VELOCITY["params"]

    listed = _ok(client.get("/v1/admin/risk/rules", headers=support.headers))
    assert [r["id"] for r in listed["data"]] == [rule["id"]]
    assert _ok(client.get(f"/v1/admin/risk/rules/{rule['id']}", headers=support.headers)) == rule

    changed = _ok(
        client.patch(
            f"/v1/admin/risk/rules/{rule['id']}",
            json={"params": {"subject": "ip", "max_attempts": 1, "window_s": 60}},
            headers=finance.headers,
        )
    )
    assert changed["params"] == {"subject": "ip", "max_attempts": 1, "window_s": 60}
    # Applied without a restart: the next assessment reads the changed rule.
    assert risk.assess(client_ip="203.0.113.1").decision == "allow"
    assert risk.assess(client_ip="203.0.113.1", user_id="usr_b").decision == "deny"

    disabled = _ok(client.delete(f"/v1/admin/risk/rules/{rule['id']}", headers=finance.headers))
    assert disabled["enabled"] is False
    assert risk.assess(client_ip="203.0.113.1").decision == "allow"
    kept = _ok(client.get("/v1/admin/risk/rules?enabled=false", headers=finance.headers))
    assert [r["id"] for r in kept["data"]] == [rule["id"]]
    assert (
        _ok(client.get("/v1/admin/risk/rules?enabled=true", headers=finance.headers))["data"] == []
    )


def test_every_kind_of_rule_can_be_created(client: TestClient, finance: Caller) -> None:
    bodies = [
        VELOCITY,
        {"kind": "failed_streak", "action": "deny", "params": {"max_failures": 3, "window_s": 600}},
        {"kind": "blacklist", "action": "deny"},
        {
            "kind": "amount_anomaly",
            "action": "review",
            "params": {"multiplier": 2.5, "min_history": 3},
        },
        {
            "kind": "new_account",
            "action": "review",
            "params": {"max_account_age_s": 86400, "max_amount_minor": 10000, "currency": "cny"},
            "priority": 5,
            "description": "new accounts paying more than 100 yuan",
        },
    ]
    created = [
        _ok(client.post("/v1/admin/risk/rules", json=b, headers=finance.headers), 201)
        for b in bodies
    ]
    assert created[2]["params"] == {}
    assert created[3]["params"] == {"multiplier": 2.5, "min_history": 3}
    assert created[4]["params"]["currency"] == "CNY"
    assert created[4]["priority"] == 5


@pytest.mark.parametrize(
    "body",
    [
        {**VELOCITY, "params": {"subject": "buyer", "max_attempts": 5}},
        {**VELOCITY, "params": {"subject": "email", "max_attempts": 5, "window_s": 60}},
        {**VELOCITY, "params": {"subject": "buyer", "max_attempts": 0, "window_s": 60}},
        {**VELOCITY, "params": {"subject": "buyer", "max_attempts": "5", "window_s": 60}},
        {**VELOCITY, "params": {"subject": "buyer", "max_attempts": 5, "window_s": 60, "x": 1}},
        {"kind": "failed_streak", "action": "deny", "params": {"max_failures": 3}},
        {"kind": "blacklist", "action": "deny", "params": {"subject": "ip"}},
        {
            "kind": "amount_anomaly",
            "action": "review",
            "params": {"multiplier": 1, "min_history": 3},
        },
        {
            "kind": "amount_anomaly",
            "action": "review",
            "params": {"multiplier": 1.00001, "min_history": 3},
        },
        {
            "kind": "amount_anomaly",
            "action": "review",
            "params": {"multiplier": "1_0", "min_history": 3},  # Decimal() reads 10
        },
        {
            "kind": "amount_anomaly",
            "action": "review",
            "params": {"multiplier": "٣", "min_history": 3},  # Arabic-Indic 3
        },
        {
            "kind": "new_account",
            "action": "review",
            "params": {"max_account_age_s": 60, "max_amount_minor": 100, "currency": "XXQ"},
        },
        {
            "kind": "new_account",
            "action": "review",
            "params": {"max_account_age_s": 60, "max_amount_minor": -1, "currency": "CNY"},
        },
        {"kind": "geo_fence", "action": "deny", "params": {}},
        {**VELOCITY, "action": "allow"},
        {**VELOCITY, "enabled": "maybe"},
        {**VELOCITY, "unknown": True},
        {"action": "deny", "params": {}},
    ],
)
def test_bad_rules_are_refused_with_422_and_nothing_is_stored(
    client: TestClient, finance: Caller, database: Database, body: dict[str, Any]
) -> None:
    response = client.post("/v1/admin/risk/rules", json=body, headers=finance.headers)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]
    assert _count(database, RiskRule) == 0


def test_a_patch_with_params_that_do_not_fit_the_kind_changes_nothing(
    client: TestClient, finance: Caller
) -> None:
    rule = _ok(client.post("/v1/admin/risk/rules", json=VELOCITY, headers=finance.headers), 201)

    for patch in (
        {"params": {"max_failures": 3, "window_s": 60}},  # a failed_streak's params
        {"params": {"subject": "ip", "max_attempts": -1, "window_s": 60}, "enabled": False},
        {"action": "allow"},
        {"kind": "blacklist"},
    ):
        response = client.patch(
            f"/v1/admin/risk/rules/{rule['id']}", json=patch, headers=finance.headers
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    refused = client.patch(
        f"/v1/admin/risk/rules/{rule['id']}",
        json={"params": {"max_failures": 3, "window_s": 60}},
        headers=finance.headers,
    ).json()
    assert refused["code"] == "invalid_risk_rule_params"
    assert {e["field"] for e in refused["errors"]} >= {"params.subject", "params.max_failures"}
    assert _ok(client.get(f"/v1/admin/risk/rules/{rule['id']}", headers=finance.headers)) == rule
    missing = client.patch(
        "/v1/admin/risk/rules/rrule_missing", json={"enabled": False}, headers=finance.headers
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "risk_rule_not_found"


def test_support_reads_rules_but_does_not_change_them(
    client: TestClient, support: Caller, database: Database
) -> None:
    response = client.post("/v1/admin/risk/rules", json=VELOCITY, headers=support.headers)
    assert response.status_code == 403
    assert _count(database, RiskRule) == 0
    assert _ok(client.get("/v1/admin/risk/rules", headers=support.headers))["data"] == []


# Blacklist


def test_a_blacklisted_ip_is_denied_end_to_end(
    client: TestClient, build: Builders, risk: Risk, database: Database
) -> None:
    admin = build.staff(Role.ADMIN)
    _ok(
        client.post(
            "/v1/admin/risk/rules",
            json={"kind": "blacklist", "action": "deny"},
            headers=admin.headers,
        ),
        201,
    )
    entry = _ok(
        client.post(
            "/v1/admin/risk/blacklist",
            json={"kind": "ip", "value": " ::ffff:203.0.113.66 ", "reason": "card testing"},
            headers=admin.headers,
        ),
        201,
    )
    assert (entry["object"], entry["value"], entry["created_by"]) == (
        "risk_blacklist_entry",
        "203.0.113.66",
        admin.id,
    )

    denied = risk.assess(client_ip="203.0.113.66")
    assert denied.decision == "deny"
    shown = _ok(client.get(f"/v1/admin/risk/decisions/{denied.id}", headers=admin.headers))
    assert shown["reasons"][0]["detail"] == "blacklisted ip 203.0.113.66"
    by_payment = _ok(
        client.get(
            "/v1/admin/risk/decisions",
            params={"payment_id": denied.payment_id},
            headers=admin.headers,
        )
    )
    assert [d["id"] for d in by_payment["data"]] == [denied.id]

    duplicate = client.post(
        "/v1/admin/risk/blacklist",
        json={"kind": "ip", "value": "203.0.113.66"},
        headers=admin.headers,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "risk_blacklist_entry_exists"
    assert _count(database, RiskBlacklistEntry) == 1

    found = _ok(
        client.get(
            "/v1/admin/risk/blacklist",
            params={"kind": "ip", "value": "::ffff:203.0.113.66"},
            headers=admin.headers,
        )
    )
    assert [e["id"] for e in found["data"]] == [entry["id"]]
    assert (
        client.delete(f"/v1/admin/risk/blacklist/{entry['id']}", headers=admin.headers).status_code
        == 204
    )
    assert (
        client.get(f"/v1/admin/risk/blacklist/{entry['id']}", headers=admin.headers).status_code
        == 404
    )
    assert risk.assess(client_ip="203.0.113.66").decision == "allow"


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "ip", "value": "not-an-ip"},
        {"kind": "ip", "value": "10.0.0.0/8"},
        {"kind": "email", "value": "a@example.com"},
        {"kind": "buyer", "value": "   "},
        {"kind": "buyer", "value": "x" * 256},
        {"kind": "device", "value": "dev-1", "extra": 1},
    ],
)
def test_bad_blacklist_entries_are_refused(
    client: TestClient, finance: Caller, database: Database, body: dict[str, Any]
) -> None:
    response = client.post("/v1/admin/risk/blacklist", json=body, headers=finance.headers)
    assert response.status_code == 422, response.text
    assert _count(database, RiskBlacklistEntry) == 0


# Reviews


def _anomaly_under_review(client: TestClient, finance: Caller, risk: Risk) -> RiskDecision:
    _ok(
        client.post(
            "/v1/admin/risk/rules",
            json={
                "kind": "amount_anomaly",
                "action": "review",
                "params": {"multiplier": 3, "min_history": 2},
            },
            headers=finance.headers,
        ),
        201,
    )
    risk.paid(amount_minor=9900)
    risk.paid(amount_minor=9900)
    held = risk.assess(amount_minor=99000)
    assert held.decision == "review"
    return held


def test_an_anomaly_is_held_listed_and_released_by_finance_once(
    client: TestClient,
    finance: Caller,
    support: Caller,
    risk: Risk,
    releaser: FakeReleaser,
    database: Database,
) -> None:
    held = _anomaly_under_review(client, finance, risk)

    queue = _ok(client.get("/v1/admin/risk/reviews?status=open", headers=support.headers))
    assert [d["id"] for d in queue["data"]] == [held.id]
    review = queue["data"][0]
    assert (review["object"], review["decision"], review["review_status"]) == (
        "risk_decision",
        "review",
        "open",
    )
    assert review["amount"] == 99000
    assert review["reasons"][0]["kind"] == "amount_anomaly"
    assert _ok(client.get(f"/v1/admin/risk/reviews/{held.id}", headers=support.headers)) == review

    released = _ok(
        client.post(
            f"/v1/admin/risk/reviews/{held.id}/release",
            json={"note": "regular buyer, checked by phone"},
            headers=finance.headers,
        )
    )
    assert released["review_status"] == "released"
    assert released["reviewed_by"] == finance.id
    assert released["review_note"] == "regular buyer, checked by phone"
    assert released["reviewed_at"] is not None
    assert releaser.released == [held.id]

    for outcome in ("release", "reject"):
        again = client.post(f"/v1/admin/risk/reviews/{held.id}/{outcome}", headers=finance.headers)
        assert again.status_code == 409, again.text
        assert again.json()["code"] == "risk_review_already_decided"
        assert again.json()["review_status"] == "released"
    assert releaser.released == [held.id]
    assert releaser.rejected == []

    assert (
        _ok(client.get("/v1/admin/risk/reviews?status=open", headers=finance.headers))["data"] == []
    )
    done = _ok(client.get("/v1/admin/risk/reviews?status=released", headers=finance.headers))
    assert [d["id"] for d in done["data"]] == [held.id]
    with database.session_scope(read_only=True) as session:
        actions = session.scalars(
            select(AuditRecord.action).where(AuditRecord.object_id == held.id)
        ).all()
    assert actions == ["risk_review.released"]


def test_support_rejects_a_held_attempt_and_it_is_logged_as_stopped(
    client: TestClient,
    finance: Caller,
    support: Caller,
    risk: Risk,
    releaser: FakeReleaser,
    database: Database,
) -> None:
    held = _anomaly_under_review(client, finance, risk)

    rejected = _ok(client.post(f"/v1/admin/risk/reviews/{held.id}/reject", headers=support.headers))

    assert rejected["review_status"] == "rejected"
    assert releaser.rejected == [held.id]
    assert releaser.released == []
    with database.session_scope(read_only=True) as session:
        outcome = session.scalar(
            select(RiskAttemptRecord.outcome).where(RiskAttemptRecord.payment_id == held.payment_id)
        )
    assert outcome == "denied"


def test_a_failing_or_missing_releaser_leaves_the_review_open(
    client: TestClient, app: FastAPI, finance: Caller, risk: Risk, releaser: FakeReleaser
) -> None:
    held = _anomaly_under_review(client, finance, risk)

    releaser.fail_with = ReleaseRefused("The order was closed meanwhile.")
    refused = client.post(f"/v1/admin/risk/reviews/{held.id}/release", headers=finance.headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "release_refused"

    del app.state.risk_releaser
    missing = client.post(f"/v1/admin/risk/reviews/{held.id}/release", headers=finance.headers)
    assert missing.status_code == 503
    assert missing.json()["code"] == "risk_review_releaser_missing"

    still = _ok(client.get(f"/v1/admin/risk/reviews/{held.id}", headers=finance.headers))
    assert still["review_status"] == "open"
    assert still["reviewed_by"] is None


def test_reviews_page_newest_first_and_other_decisions_are_not_reviews(
    client: TestClient, finance: Caller, risk: Risk
) -> None:
    _ok(
        client.post(
            "/v1/admin/risk/rules",
            json={
                "kind": "new_account",
                "action": "review",
                "params": {"max_account_age_s": 60, "max_amount_minor": 100, "currency": "CNY"},
            },
            headers=finance.headers,
        ),
        201,
    )
    # Ids sort by creation time to the millisecond; sorting them gives the expected order.
    held = sorted(risk.assess(user_id=f"usr_new{n}").id for n in range(3))
    allowed = risk.assess(amount_minor=100)

    first = _ok(client.get("/v1/admin/risk/reviews?limit=2", headers=finance.headers))
    assert [d["id"] for d in first["data"]] == held[:0:-1]
    assert first["has_more"] is True
    rest = _ok(
        client.get(
            "/v1/admin/risk/reviews",
            params={"limit": 2, "starting_after": held[1]},
            headers=finance.headers,
        )
    )
    assert ([d["id"] for d in rest["data"]], rest["has_more"]) == ([held[0]], False)
    assert (
        client.get(f"/v1/admin/risk/reviews/{allowed.id}", headers=finance.headers).status_code
        == 404
    )
    assert (
        client.get("/v1/admin/risk/reviews?status=pending", headers=finance.headers).status_code
        == 422
    )


# Access


def _routes() -> list[tuple[str, str]]:
    found = []
    for route in router.routes:
        assert isinstance(route, APIRoute)
        path = re.sub(r"\{[^}]+\}", "x_1", route.path)
        found.extend((method, path) for method in sorted(route.methods))
    return found


def test_the_router_covers_rules_blacklist_decisions_and_reviews() -> None:
    paths = {path for _method, path in _routes()}
    assert {
        "/v1/admin/risk/rules",
        "/v1/admin/risk/blacklist",
        "/v1/admin/risk/reviews",
        "/v1/admin/risk/reviews/x_1/release",
        "/v1/admin/risk/reviews/x_1/reject",
    } <= paths


def test_buyers_creators_and_apps_get_403_on_every_risk_route(
    client: TestClient, build: Builders, database: Database
) -> None:
    app = build.app()
    callers = {
        "app": app,
        "buyer": build.buyer(app),
        "creator": build.buyer(app, role="creator"),
    }
    for method, path in _routes():
        for name, caller in callers.items():
            response = client.request(method, path, json=VELOCITY, headers=caller.headers)
            assert response.status_code == 403, (name, method, path, response.text)
            assert response.json()["code"] == "forbidden"
        anonymous = client.request(method, path, json=VELOCITY)
        assert anonymous.status_code == 401, (method, path)
    assert _count(database, RiskRule) == 0
