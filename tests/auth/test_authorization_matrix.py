"""The authorization matrix (issue #8): for every route of the app, a buyer or an app reaching
for another's object gets 404 (not 403, not the data) and changes nothing; every staff
route refuses buyers, creators and apps.

The routes come from `create_app().routes`, so a new endpoint is covered the moment it is
mounted: `test_every_route_is_classified` fails until it is put in one of the tables below
(and owner-scoped or collection routes need a probe there, or the other tests fail)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.auth.principals import Role
from knowpay.entitlements.models import Entitlement
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.settlements.models import Settlement
from knowpay.subscriptions.models import Subscription
from knowpay.webhooks.models import WebhookEndpoint
from knowpay.worker.runner import Worker
from tests.builders import Builders, Caller

# Classification ------------------------------------------------------------------------------

PUBLIC_PATHS = frozenset(
    {
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/v1/auth/token",
        "/healthz",
        "/readyz",
        "/metrics",
        "/notify/{gateway}",  # gateways: trusted only after their signature checks out
        "/return/{payment_id}",  # the payer's browser back from a gateway
    }
)
PUBLIC_PREFIXES = ("/forms/", "/sandbox/")  # gateway form pages; the test gateway's sandbox
STAFF_PREFIX = "/v1/admin/"
STAFF_ROUTES = frozenset(
    {
        ("POST", "/v1/refunds/{refund_id}/approve"),
        ("POST", "/v1/refunds/{refund_id}/reject"),
        ("POST", "/v1/refunds/{refund_id}/retry"),
        ("POST", "/v1/refunds/{refund_id}/resolve"),
    }
)

APP, BUYER = "app", "buyer"


@dataclass(frozen=True)
class OwnerProbe:
    """A route on one object: which of app/buyer may use it on their own objects, and the
    body a stranger sends."""

    roles: frozenset[str]
    body: dict[str, Any] | None = None


BOTH = frozenset({APP, BUYER})
APP_ONLY = frozenset({APP})

OWNER_SCOPED: dict[tuple[str, str], OwnerProbe] = {
    ("GET", "/v1/users/{user_id}"): OwnerProbe(BOTH),
    ("GET", "/v1/products/{product_id}"): OwnerProbe(BOTH),
    ("PATCH", "/v1/products/{product_id}"): OwnerProbe(APP_ONLY, {"title": "Hijacked"}),
    ("POST", "/v1/products/{product_id}/publish"): OwnerProbe(APP_ONLY),
    ("POST", "/v1/products/{product_id}/archive"): OwnerProbe(APP_ONLY),
    ("GET", "/v1/orders/{order_id}"): OwnerProbe(BOTH),
    ("POST", "/v1/orders/{order_id}/payments"): OwnerProbe(BOTH, {"channel": "test"}),
    ("GET", "/v1/orders/{order_id}/channels"): OwnerProbe(BOTH),
    ("GET", "/v1/orders/{order_id}/payments"): OwnerProbe(BOTH),
    ("POST", "/v1/orders/{order_id}/close"): OwnerProbe(APP_ONLY),
    ("GET", "/v1/payments/{payment_id}"): OwnerProbe(BOTH),
    ("POST", "/v1/payments/{payment_id}/sync"): OwnerProbe(APP_ONLY),
    ("POST", "/v1/entitlements/{entitlement_id}/access"): OwnerProbe(BOTH),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): OwnerProbe(APP_ONLY),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): OwnerProbe(
        APP_ONLY, {"url": "https://hooks.b.example.com/stolen", "events": ["*"]}
    ),
    ("GET", "/v1/events/{event_id}"): OwnerProbe(APP_ONLY),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): OwnerProbe(APP_ONLY),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): OwnerProbe(APP_ONLY),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): OwnerProbe(APP_ONLY),
    (
        "POST",
        "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    ): OwnerProbe(APP_ONLY),
    ("GET", "/v1/refunds/{refund_id}"): OwnerProbe(BOTH),
    ("POST", "/v1/orders/{order_id}/cashier-link"): OwnerProbe(APP_ONLY),
    ("GET", "/v1/settlements/{settlement_id}"): OwnerProbe(BOTH),  # its creator is a person
    ("GET", "/v1/creators/{creator_id}/balance"): OwnerProbe(BOTH),
    ("GET", "/v1/subscriptions/{subscription_id}"): OwnerProbe(BOTH),
    ("POST", "/v1/subscriptions/{subscription_id}/cancel"): OwnerProbe(
        BOTH, {"at_period_end": False}
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/resume"): OwnerProbe(BOTH),
}

# The server-rendered pages authenticate by session cookie, not by the API's credentials: their
# owner and role checks are proven in tests/web/test_pages.py (another buyer's order and
# content are 404, staff cannot use /me) and tests/web/test_console.py (buyers and apps are
# refused every console page and form).
WEB_PAGES = frozenset({"/", "/login", "/logout", "/lang", "/me", "/admin"})
WEB_PAGE_PREFIXES = ("/static/", "/pay/", "/me/", "/admin/")


def _is_web_page(path: str) -> bool:
    return path in WEB_PAGES or path.startswith(WEB_PAGE_PREFIXES)


# The world: app A's objects, and strangers ---------------------------------------------------


@dataclass
class World:
    client: TestClient
    app_a: Caller
    buyer_a: Caller
    app_b: Caller
    buyer_b: Caller
    creator_b: Caller
    course_id: str
    """A's published course: the platform's catalog, visible to all."""
    ids: dict[str, str]
    """Path parameter → one of A's objects."""
    markers: set[str] = field(default_factory=set)
    """Strings that belong to A and must never reach a stranger."""

    def call(
        self,
        caller: Caller,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.client.request(method, path, json=body, params=params, headers=caller.headers)

    def assert_nothing_foreign(self, response: httpx.Response, allowed: set[str]) -> None:
        leaked = {m for m in self.markers - allowed if m in response.text}
        assert not leaked, f"{response.request.method} {response.request.url}: {leaked}"


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def world(
    app: FastAPI, client: TestClient, build: Builders, settings: Settings, database: Database,
    clock: FrozenClock,
) -> World:  # fmt: skip
    app_a, app_b = build.app("A"), build.app("B")
    buyer_a = build.buyer(app_a, email="owner.a@example.com", phone="13800000001")
    buyer_b = build.buyer(app_b)
    creator_b = build.buyer(app_b, role="creator")
    course = build.product(app_a, title="Course of A")
    draft = build.product(app_a, title="Secret draft of A", status="draft")

    def order() -> dict[str, Any]:
        body = {"user_id": buyer_a.id, "items": [{"product_id": course["id"]}], "currency": "CNY"}
        return _ok(client.post("/v1/orders", json=body, headers=app_a.headers))

    endpoint = _ok(
        client.post(
            "/v1/webhook-endpoints",
            json={"url": "https://hooks.a.example.com/knowpay", "events": ["*"]},
            headers=app_a.headers,
        )
    )
    paid = order()
    payment = _ok(
        client.post(
            f"/v1/orders/{paid['id']}/payments", json={"channel": "test"}, headers=app_a.headers
        )
    )
    _ok(client.post(f"/sandbox/test/payments/{payment['id']}/confirm", json={}))
    refund = _ok(
        client.post(
            "/v1/refunds",
            json={"order_id": paid["id"], "amount": 100, "reason": "other"},
            headers=app_a.headers,
        )
    )
    open_order = order()
    [entitlement] = _ok(
        client.get("/v1/entitlements", params={"user_id": buyer_a.id}, headers=app_a.headers)
    )["data"]
    worker = Worker(settings, database, clock, app.state.channel_registry)
    while worker.dispatcher.run_once():  # events become deliveries (never sent: no deliverer)
        pass
    deliveries = _ok(
        client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=app_a.headers)
    )["data"]
    assert deliveries, "the paid order produced deliveries to A's endpoint"
    events = _ok(client.get("/v1/events", headers=app_a.headers))["data"]
    creator_a = build.buyer(app_a, role="creator")
    settlement_id = _statement_of(database, creator_a.id, app_a.id, clock.now())
    subscription_id = _subscription_of(database, buyer_a.id, app_a.id, course["id"], clock.now())

    ids = {
        "user_id": buyer_a.id,
        "product_id": draft["id"],
        "order_id": open_order["id"],  # an unpaid order: a hole could close or pay it
        "payment_id": payment["id"],
        "entitlement_id": entitlement["id"],
        "endpoint_id": endpoint["id"],
        "delivery_id": deliveries[0]["id"],
        "event_id": events[0]["id"],
        "refund_id": refund["id"],
        "settlement_id": settlement_id,
        "creator_id": creator_a.id,
        "subscription_id": subscription_id,
    }
    markers = {
        *ids.values(),
        paid["id"],
        buyer_a.email,
        "13800000001",
        "Secret draft of A",
        "hooks.a.example.com",
        *(d["id"] for d in deliveries),
        *(e["id"] for e in events),
    }
    return World(client, app_a, buyer_a, app_b, buyer_b, creator_b, course["id"], ids, markers)


def _statement_of(database: Database, creator_id: str, app_id: str, now: datetime) -> str:
    """An open statement of A's creator (as `settle` would write one)."""
    with database.session_scope() as session:
        session.add(
            Settlement(
                id="stl_0000000000a000000000000000",
                creator_id=creator_id,
                app_id=app_id,
                currency="CNY",
                period_start=date(2025, 12, 1),
                period_end=date(2026, 1, 1),
                earned_minor=7000,
                reversed_minor=0,
                amount_minor=7000,
                status="open",
                created_at=now,
            )
        )
    return "stl_0000000000a000000000000000"


def _subscription_of(
    database: Database, buyer_id: str, app_id: str, product_id: str, now: datetime
) -> str:
    """A live subscription of A's buyer, set to end with its period (so that resuming it is
    something its owner may do)."""
    with database.session_scope() as session:
        session.add(
            Subscription(
                id="sub_0000000000a000000000000000",
                app_id=app_id,
                user_id=buyer_id,
                product_id=product_id,
                live_product_id=product_id,
                amount_minor=9900,
                currency="CNY",
                period_days=30,
                status="active",
                cancel_at_period_end=True,
                current_period_end=now + timedelta(days=30),
                next_attempt_at=now + timedelta(days=30),
                renewals=0,
                failed_attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    return "sub_0000000000a000000000000000"


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def _nonexistent(ids: dict[str, str]) -> dict[str, str]:
    return {
        name: value.split("_")[0] + "_0000000000000000000000000z" for name, value in ids.items()
    }


def _routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    for route in iter_route_contexts(app.routes):
        for method in sorted(route.methods or ()):
            if method != "HEAD" and route.path is not None:
                yield method, route.path


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _is_staff_only(method: str, path: str) -> bool:
    return path.startswith(STAFF_PREFIX) or (method, path) in STAFF_ROUTES


# Collections: routes without an object id in the path, probed with A's ids in the body or
# query, or checked for A's data in what they list. ----------------------------------------------

Probe = Callable[[World, Caller], None]


def _self_only(world: World, caller: Caller) -> None:
    """The route acts on the caller alone (their account, their new object)."""


def _list_without_foreign(path: str, **params: str) -> Probe:
    def probe(world: World, caller: Caller) -> None:
        query = {name: world.ids.get(value, value) for name, value in params.items()}
        response = world.call(caller, "GET", path, params=query)
        assert response.status_code in (200, 400, 403), response.text
        world.assert_nothing_foreign(response, allowed=set(query.values()))

    return probe


def _same_answer_as_for_nothing(
    world: World, caller: Caller, path: str, foreign: dict[str, Any], ghost: dict[str, Any]
) -> httpx.Response:
    """A reference to another's object in a body is answered as one to no object at all."""
    response = world.call(caller, "POST", path, foreign)
    unknown = world.call(caller, "POST", path, ghost)
    assert not 200 <= response.status_code < 300, response.text
    assert response.status_code in (403, 404, 422), response.text
    assert (response.status_code, response.json()["code"]) == (
        unknown.status_code,
        unknown.json()["code"],
    ), f"{response.text} vs {unknown.text}"
    return response


def _order_for_a_foreign_buyer_or_product(world: World, caller: Caller) -> None:
    items = [{"product_id": world.course_id}]
    ghost_user = _nonexistent({"u": world.buyer_a.id})["u"]
    foreign = {"user_id": world.buyer_a.id, "items": items, "currency": "CNY"}
    response = _same_answer_as_for_nothing(
        world, caller, "/v1/orders", foreign, {**foreign, "user_id": ghost_user}
    )
    world.assert_nothing_foreign(response, allowed={world.buyer_a.id})
    own_buyer = world.buyer_b.id
    draft = {
        "user_id": own_buyer,
        "items": [{"product_id": world.ids["product_id"]}],
        "currency": "CNY",
    }
    ghost_product = _nonexistent({"p": world.ids["product_id"]})["p"]
    response = _same_answer_as_for_nothing(
        world, caller, "/v1/orders", draft, {**draft, "items": [{"product_id": ghost_product}]}
    )
    world.assert_nothing_foreign(response, allowed={world.ids["product_id"]})


def _refund_of_a_foreign_order(world: World, caller: Caller) -> None:
    paid_order = _ok(world.call(world.app_a, "GET", f"/v1/payments/{world.ids['payment_id']}"))[
        "order_id"
    ]
    response = world.call(caller, "POST", "/v1/refunds", {"order_id": paid_order, "reason": "x"})
    assert response.status_code == 404, response.text
    world.assert_nothing_foreign(response, allowed={paid_order})


def _top_up_of_a_foreign_wallet(world: World, caller: Caller) -> None:
    ghost_user = _nonexistent({"u": world.buyer_a.id})["u"]
    foreign = {"user_id": world.buyer_a.id, "amount": 1000, "currency": "CNY"}
    response = _same_answer_as_for_nothing(
        world, caller, "/v1/wallet/top-ups", foreign, {**foreign, "user_id": ghost_user}
    )
    world.assert_nothing_foreign(response, allowed={world.buyer_a.id})


def _subscription_for_a_foreign_buyer(world: World, caller: Caller) -> None:
    ghost_user = _nonexistent({"u": world.buyer_a.id})["u"]
    foreign = {
        "user_id": world.buyer_a.id,
        "product_id": world.course_id,
        "currency": "CNY",
        "payment_password": "135790",
    }
    response = _same_answer_as_for_nothing(
        world, caller, "/v1/subscriptions", foreign, {**foreign, "user_id": ghost_user}
    )
    world.assert_nothing_foreign(response, allowed={world.buyer_a.id})


def _foreign_wallet_read(path: str) -> Probe:
    def probe(world: World, caller: Caller) -> None:
        ghost_user = _nonexistent({"u": world.buyer_a.id})["u"]
        response = world.call(caller, "GET", path, params={"user_id": world.buyer_a.id})
        unknown = world.call(caller, "GET", path, params={"user_id": ghost_user})
        assert response.status_code == 404, response.text
        assert response.json()["code"] == unknown.json()["code"] == "user_not_found"
        world.assert_nothing_foreign(response, allowed={world.buyer_a.id})

    return probe


COLLECTIONS: dict[tuple[str, str], Probe] = {
    ("POST", "/v1/users"): _self_only,
    ("GET", "/v1/users"): _list_without_foreign("/v1/users"),
    ("GET", "/v1/users/me"): _list_without_foreign("/v1/users/me"),
    ("PUT", "/v1/users/me/payment-password"): _self_only,
    ("POST", "/v1/users/me/payment-password/verify"): _self_only,
    ("POST", "/v1/products"): _self_only,
    ("GET", "/v1/products"): _list_without_foreign("/v1/products", status="draft"),
    ("POST", "/v1/orders"): _order_for_a_foreign_buyer_or_product,
    ("GET", "/v1/orders"): _list_without_foreign("/v1/orders", user_id="user_id"),
    ("GET", "/v1/entitlements"): _list_without_foreign("/v1/entitlements", user_id="user_id"),
    ("POST", "/v1/webhook-endpoints"): _self_only,
    ("GET", "/v1/webhook-endpoints"): _list_without_foreign("/v1/webhook-endpoints"),
    ("GET", "/v1/events"): _list_without_foreign("/v1/events"),
    ("POST", "/v1/refunds"): _refund_of_a_foreign_order,
    ("GET", "/v1/refunds"): _list_without_foreign("/v1/refunds", order_id="order_id"),
    ("POST", "/v1/wallet/top-ups"): _top_up_of_a_foreign_wallet,
    ("GET", "/v1/wallet"): _foreign_wallet_read("/v1/wallet"),
    ("GET", "/v1/wallet/transactions"): _foreign_wallet_read("/v1/wallet/transactions"),
    ("GET", "/v1/settlements"): _list_without_foreign("/v1/settlements", creator_id="creator_id"),
    ("POST", "/v1/subscriptions"): _subscription_for_a_foreign_buyer,
    ("GET", "/v1/subscriptions"): _list_without_foreign("/v1/subscriptions", user_id="user_id"),
}


# Tests -------------------------------------------------------------------------------------------


def test_every_route_is_classified(app: FastAPI) -> None:
    unclassified = [
        f"{method} {path}"
        for method, path in _routes(app)
        if not _is_public(path)
        and not _is_web_page(path)
        and not _is_staff_only(method, path)
        and (method, path) not in OWNER_SCOPED
        and (method, path) not in COLLECTIONS
    ]
    assert not unclassified, (
        "classify these routes in tests/auth/test_authorization_matrix.py: " + str(unclassified)
    )
    mounted = set(_routes(app))
    stale = [
        route for route in [*OWNER_SCOPED, *COLLECTIONS, *STAFF_ROUTES] if route not in mounted
    ]
    assert not stale, f"the matrix names routes the app no longer has: {stale}"


def test_every_staff_route_refuses_buyers_creators_and_apps(app: FastAPI, world: World) -> None:
    staff_routes = [(m, p) for m, p in _routes(app) if _is_staff_only(m, p)]
    assert len(staff_routes) >= 10
    ids = {**world.ids, "limit_id": "lim_0000000000000000000000000z", "gateway": "alipay"}
    for method, template in staff_routes:
        path = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "x_0000"), template)
        for caller in (world.app_b, world.buyer_b, world.creator_b, world.app_a, world.buyer_a):
            body = {} if method in ("POST", "PUT", "PATCH") else None
            response = world.call(caller, method, path, body)
            assert response.status_code in (401, 403), f"{method} {path}: {response.text}"
            assert response.json()["code"] in ("forbidden", "unauthorized"), response.text
            world.assert_nothing_foreign(response, allowed=set(ids.values()))


def test_strangers_get_404_and_nothing_of_anothers_objects(app: FastAPI, world: World) -> None:
    mounted = set(_routes(app))
    missing = [route for route in OWNER_SCOPED if route not in mounted]
    assert not missing
    strangers = {APP: world.app_b, BUYER: world.buyer_b}
    for (method, template), probe in OWNER_SCOPED.items():
        path = _fill(template, world.ids)
        ghost = _fill(template, _nonexistent(world.ids))
        for role, stranger in strangers.items():
            response = world.call(stranger, method, path, probe.body)
            where = f"{role} B: {method} {path} -> {response.status_code} {response.text}"
            assert not 200 <= response.status_code < 300, where
            world.assert_nothing_foreign(response, allowed=set(path.split("/")))
            # Whatever the answer, it must not tell A's object from one that does not exist.
            unknown = world.call(stranger, method, ghost, probe.body)
            if role in probe.roles:
                assert response.status_code == 404, where
            else:  # a role the route refuses for any object
                assert response.status_code in (401, 403), where
            assert (response.status_code, response.json()["code"]) == (
                unknown.status_code,
                unknown.json()["code"],
            ), where


def test_strangers_change_nothing_of_anothers(world: World, database: Database) -> None:
    with database.session_scope(read_only=True) as session:
        secret_before = session.scalars(
            select(WebhookEndpoint.secret_sealed).where(
                WebhookEndpoint.id == world.ids["endpoint_id"]
            )
        ).one()
    for (method, template), probe in OWNER_SCOPED.items():
        for stranger in (world.app_b, world.buyer_b):
            world.call(stranger, method, _fill(template, world.ids), probe.body)
    for probe_fn in COLLECTIONS.values():
        for stranger in (world.app_b, world.buyer_b):
            probe_fn(world, stranger)

    a = world.app_a
    order = _ok(world.call(a, "GET", f"/v1/orders/{world.ids['order_id']}"))
    assert order["status"] == "created"
    assert _ok(world.call(a, "GET", f"/v1/orders/{world.ids['order_id']}/payments"))["data"] == []
    product = _ok(world.call(a, "GET", f"/v1/products/{world.ids['product_id']}"))
    assert (product["title"], product["status"]) == ("Secret draft of A", "draft")
    endpoint = _ok(world.call(a, "GET", f"/v1/webhook-endpoints/{world.ids['endpoint_id']}"))
    assert (endpoint["status"], endpoint["url"]) == (
        "enabled",
        "https://hooks.a.example.com/knowpay",
    )
    paid_order = _ok(world.call(a, "GET", f"/v1/payments/{world.ids['payment_id']}"))["order_id"]
    refunds = _ok(world.call(a, "GET", "/v1/refunds", params={"order_id": paid_order}))["data"]
    assert [r["id"] for r in refunds] == [world.ids["refund_id"]]
    with database.session_scope(read_only=True) as session:
        entitlement = session.get(Entitlement, world.ids["entitlement_id"])
        assert entitlement is not None
        assert entitlement.first_accessed_at is None
        endpoint_row = session.get(WebhookEndpoint, world.ids["endpoint_id"])
        assert endpoint_row is not None
        assert endpoint_row.secret_sealed == secret_before
        assert endpoint_row.previous_secrets_json == "[]"


def test_collection_routes_never_show_anothers_objects(world: World) -> None:
    for (method, path), probe in COLLECTIONS.items():
        for stranger in (world.app_b, world.buyer_b):
            try:
                probe(world, stranger)
            except AssertionError as exc:
                raise AssertionError(f"{method} {path} as {stranger.id}: {exc}") from exc


def test_the_owner_sees_its_objects_so_the_404s_above_mean_something(world: World) -> None:
    for (method, template), _probe in OWNER_SCOPED.items():
        if method != "GET":
            continue
        caller = world.app_a
        response = world.call(caller, method, _fill(template, world.ids))
        assert response.status_code == 200, f"{template}: {response.text}"


def test_an_apps_products_are_not_there_for_another_app_or_its_buyers(
    world: World, build: Builders
) -> None:
    """API.md: an app sees and changes only its own objects. Published products used to be
    one catalog every app could read and order from (found by an audit against API.md)."""
    published = build.product(world.app_a, title="Public course of A")
    for stranger in (world.app_b, world.buyer_b):
        assert world.call(stranger, "GET", f"/v1/products/{published['id']}").status_code == 404
        listed = _ok(world.call(stranger, "GET", "/v1/products"))["data"]
        assert published["id"] not in [p["id"] for p in listed]
    refused = world.call(world.app_b, "PATCH", f"/v1/products/{published['id']}", {"title": "X"})
    assert refused.status_code == 404
    for action in ("archive", "publish"):
        assert (
            world.call(world.app_b, "POST", f"/v1/products/{published['id']}/{action}").status_code
            == 404
        )
    order = {
        "user_id": world.buyer_b.id,
        "currency": "CNY",
        "items": [{"product_id": published["id"]}],
    }
    ordered = world.call(world.app_b, "POST", "/v1/orders", order)
    assert (ordered.status_code, ordered.json()["code"]) == (404, "product_not_found")
    after = _ok(world.call(world.app_a, "GET", f"/v1/products/{published['id']}"))
    assert (after["title"], after["status"]) == ("Public course of A", "published")
    assert world.call(world.buyer_a, "GET", f"/v1/products/{published['id']}").status_code == 200


def test_support_staff_may_read_but_buyers_of_another_app_may_not(
    world: World, build: Builders
) -> None:
    support = build.staff(Role.SUPPORT)
    assert world.call(support, "GET", f"/v1/orders/{world.ids['order_id']}").status_code == 200
    assert (
        world.call(world.buyer_b, "GET", f"/v1/orders/{world.ids['order_id']}").status_code == 404
    )
