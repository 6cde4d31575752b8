"""Schemathesis against /openapi.json, through the test fixtures' app, as three callers: a
platform app (API key), a buyer (token) and an admin (staff token).

Every operation is fuzzed with positive (schema-valid) and negative (schema-violating) data;
path parameters name the seeded objects half of the time (else whatever was generated, which
mostly means 404s). Every answer must be no 5xx, a documented status code and content type,
documented headers, and a body that matches the documented schema. A few explicit calls make
sure the happy paths (2xx with real bodies) are checked against the schema too.

Size: KNOWPAY_FUZZ_EXAMPLES examples per operation, per generation mode, per caller (default
2: about 1,000 requests, under a minute). KNOWPAY_FUZZ_EXAMPLES=10 sends about 4,700; the
fuzzing section of pytest's summary says how many were sent (see docs/fuzzing.md).

Nothing is excluded: the `/sandbox/test/...` helper and `/notify/{gateway}` are fuzzed like
the rest (only the test channel is configured here, so nothing leaves the process).

Schemathesis runs on its Python API rather than its pytest plugin (`schema.parametrize()`
with `schemathesis.pytest.from_fixture`), which fails on this pytest version; the checks
and the generated data are the same."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from knowpay.auth.principals import Role
from tests.builders import Builders, Caller, Shop
from tests.fuzz.support import fuzz_examples, record

EXAMPLES = fuzz_examples(default=2)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
GATEWAYS = ("test", "alipay", "wechatpay", "unionpay", "stripe", "paypal")


@dataclass
class World:
    """The seeded objects and the three callers."""

    shop: Shop
    admin: Caller
    ids: dict[str, str]

    def caller(self, kind: str) -> Caller:
        return {"app": self.shop.app, "buyer": self.shop.buyer, "admin": self.admin}[kind]


def _created(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def world(build: Builders) -> World:
    """A paid order with a partial refund and an entitlement, a pending payment, a webhook
    endpoint, a spending limit, a risk rule and a blacklist entry."""
    shop = Shop(build)
    client = shop.client
    admin = build.staff(Role.ADMIN)
    paid = shop.order()
    payment = shop.pay(paid)
    shop.confirm(payment)
    refund = _created(
        client.post(
            "/v1/refunds",
            json={"order_id": paid["id"], "amount": 100, "reason": "other"},
            headers=shop.app.headers,
        )
    )
    waiting = shop.pay(shop.order())
    entitlements = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    endpoint = _created(
        client.post(
            "/v1/webhook-endpoints",
            json={"url": "https://platform.example/hooks", "events": ["*"]},
            headers=shop.app.headers,
        )
    )
    limit = _created(
        client.post(
            "/v1/admin/limits",
            json={"scope": "buyer", "period": "day", "amount": 10**9, "currency": "CNY"},
            headers=admin.headers,
        )
    )
    rule = _created(
        client.post(
            "/v1/admin/risk/rules",
            json={"kind": "blacklist", "action": "review", "enabled": False},
            headers=admin.headers,
        )
    )
    entry = _created(
        client.post(
            "/v1/admin/risk/blacklist",
            json={"kind": "ip", "value": "203.0.113.7"},
            headers=admin.headers,
        )
    )
    ids = {
        "user_id": shop.buyer.id,
        "product_id": shop.course["id"],
        "order_id": paid["id"],
        "payment_id": payment["id"],
        "refund_id": refund["id"],
        "entitlement_id": entitlements[0]["id"],
        "endpoint_id": endpoint["id"],
        "limit_id": limit["id"],
        "rule_id": rule["id"],
        "entry_id": entry["id"],
        "waiting_payment_id": waiting["id"],
    }
    return World(shop, admin, ids)


def _seeded_path_parameters(ids: dict[str, str]) -> Callable[[Any, Any], Any]:
    """A schemathesis `flatmap_case` hook: half of the cases name seeded objects in their path."""

    def flatmap_case(context: Any, case: Any) -> Any:
        names = [name for name in case.path_parameters or {} if name in ids or name == "gateway"]
        if not names:
            return st.just(case)

        def seeded(gateway: str) -> Any:
            real = {name: ids.get(name, gateway) for name in names}
            case.path_parameters = {**case.path_parameters, **real}
            return case

        return st.one_of(st.just(case), st.sampled_from(GATEWAYS).map(seeded))

    return flatmap_case


def _schema(app: FastAPI, world: World) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.hook(_seeded_path_parameters(world.ids))
    return schema


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], label: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        record(label, response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("caller_kind", ["app", "buyer", "admin"])
def test_generated_requests_get_documented_answers(
    app: FastAPI, world: World, caller_kind: str
) -> None:
    """Every operation, positive and negative data: no 5xx, nothing the schema does not say."""
    schema = _schema(app, world)
    headers = world.caller(caller_kind).headers
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, headers, f"API as {caller_kind}")
            except Unsatisfiable:
                continue  # nothing in this operation can be made invalid (no parameters)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}] {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)


# The happy paths, explicitly: generated data rarely gets past validation and ownership.


Call = tuple[str, str, str, dict[str, Any]]


def _call(caller: str, method: str, path: str, **fields: Any) -> Call:
    return caller, method, path, fields


def _happy_calls(world: World) -> list[Call]:
    """(caller, method, path template, case fields) of calls that must succeed."""
    ids, shop = world.ids, world.shop
    order, payment = {"order_id": ids["order_id"]}, {"payment_id": ids["payment_id"]}
    new_order = {
        "user_id": ids["user_id"],
        "items": [{"product_id": ids["product_id"]}],
        "currency": "CNY",
    }
    return [
        _call("app", "GET", "/v1/users/{user_id}", path_parameters={"user_id": ids["user_id"]}),
        _call("buyer", "GET", "/v1/users/me"),
        _call("app", "GET", "/v1/products"),
        _call(
            "app",
            "GET",
            "/v1/products/{product_id}",
            path_parameters={"product_id": ids["product_id"]},
        ),
        _call("app", "GET", "/v1/orders"),
        _call("buyer", "GET", "/v1/orders/{order_id}", path_parameters=order),
        _call("app", "GET", "/v1/orders/{order_id}/payments", path_parameters=order),
        _call("app", "GET", "/v1/orders/{order_id}/channels", path_parameters=order),
        _call("buyer", "GET", "/v1/payments/{payment_id}", path_parameters=payment),
        _call("app", "POST", "/v1/payments/{payment_id}/sync", path_parameters=payment),
        _call("app", "GET", "/v1/entitlements", query={"user_id": ids["user_id"]}),
        _call(
            "buyer",
            "POST",
            "/v1/entitlements/{entitlement_id}/access",
            path_parameters={"entitlement_id": ids["entitlement_id"]},
        ),
        _call("app", "GET", "/v1/refunds"),
        _call(
            "buyer",
            "GET",
            "/v1/refunds/{refund_id}",
            path_parameters={"refund_id": ids["refund_id"]},
        ),
        _call(
            "app",
            "GET",
            "/v1/webhook-endpoints/{endpoint_id}/deliveries",
            path_parameters={"endpoint_id": ids["endpoint_id"]},
        ),
        _call(
            "admin",
            "GET",
            "/v1/admin/limits/{limit_id}/usage",
            path_parameters={"limit_id": ids["limit_id"]},
        ),
        _call(
            "admin",
            "GET",
            "/v1/admin/risk/rules/{rule_id}",
            path_parameters={"rule_id": ids["rule_id"]},
        ),
        _call(
            "admin",
            "GET",
            "/v1/admin/risk/blacklist/{entry_id}",
            path_parameters={"entry_id": ids["entry_id"]},
        ),
        _call("admin", "GET", "/v1/admin/risk/decisions"),
        _call("admin", "GET", "/v1/admin/alerts"),
        _call("admin", "GET", "/v1/admin/audit"),
        _call("admin", "GET", "/v1/admin/channels"),
        _call("admin", "GET", "/v1/admin/apps"),
        _call("admin", "GET", "/v1/admin/gateways"),
        _call("admin", "GET", "/v1/admin/duplicate-payments"),
        _call("admin", "GET", "/v1/admin/reports/revenue", query={"base_currency": "CNY"}),
        _call("app", "GET", "/readyz"),
        _call("app", "GET", "/healthz"),
        _call("app", "GET", "/metrics"),
        _call("app", "POST", "/v1/orders", body=new_order),
        _call(
            "app",
            "POST",
            "/v1/orders/{order_id}/close",
            path_parameters={"order_id": shop.order()["id"]},
        ),
        _call(
            "app",
            "POST",
            "/v1/orders/{order_id}/payments",
            path_parameters={"order_id": shop.order()["id"]},
            body={"channel": "test"},
        ),
        _call(
            "app",
            "POST",
            "/sandbox/test/payments/{payment_id}/confirm",
            path_parameters={"payment_id": ids["waiting_payment_id"]},
            body={"outcome": "succeeded"},
        ),
        _call(
            "buyer",
            "POST",
            "/v1/refunds",
            body={"order_id": ids["order_id"], "amount": 100, "reason": "other"},
        ),
    ]


def test_happy_paths_answer_what_the_schema_says(app: FastAPI, world: World) -> None:
    schema = _schema(app, world)
    failures: list[str] = []
    for kind, method, path, fields in _happy_calls(world):
        case = schema[path][method].Case(**fields)
        response = case.call(headers=world.caller(kind).headers)
        record("API happy paths", response.status_code)
        try:
            assert 200 <= response.status_code < 300, response.text
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{kind} {method} {path}: {type(exc).__name__}: {exc}")
    assert not failures, "\n\n".join(failures)
