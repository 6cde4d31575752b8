"""Builders for test data, going through the same services and HTTP API as real callers."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from knowpay.accounts import service as accounts
from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import PasswordHashSettings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database

_counter = itertools.count(1)
_FAST = PasswordHashSettings(time_cost=1, memory_cost_kib=64, parallelism=1)


@dataclass
class Caller:
    """Someone calling the API: an app with its key, or a person with a token."""

    id: str
    headers: dict[str, str]
    email: str = ""
    password: str = ""


class Builders:
    def __init__(self, client: TestClient, database: Database, clock: FrozenClock) -> None:
        self.client = client
        self.database = database
        self.clock = clock

    def app(self, name: str = "web") -> Caller:
        with self.database.session_scope() as session:
            created = accounts.create_app(session, name=name, now=self.clock.now())
        return Caller(created.app.id, {"Authorization": f"Bearer {created.api_key}"})

    def login(self, email: str, password: str) -> dict[str, str]:
        response = self.client.post(
            "/v1/auth/token", json={"username": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def relogin(self, caller: Caller) -> Caller:
        """A fresh token for a person (after the frozen clock moved past the old one's life)."""
        if not caller.password:
            return caller
        return Caller(
            caller.id, self.login(caller.email, caller.password), caller.email, caller.password
        )

    def buyer(self, app: Caller, **fields: Any) -> Caller:
        email = fields.pop("email", f"buyer{next(_counter)}@example.com")
        password = fields.pop("password", "buyer-password-1")
        response = self.client.post(
            "/v1/users", json={"email": email, "password": password, **fields}, headers=app.headers
        )
        assert response.status_code == 201, response.text
        return Caller(response.json()["id"], self.login(email, password), email, password)

    def staff(self, role: Role) -> Caller:
        email = f"{role.value}{next(_counter)}@staff.example.com"
        password = "staff-password-1"
        with self.database.session_scope() as session:
            user = accounts.create_staff(
                session,
                SecretHasher(_FAST),
                email=email,
                password=password,
                role=role,
                now=self.clock.now(),
            )
        return Caller(user.id, self.login(email, password), email, password)

    def product(self, app: Caller, **fields: Any) -> dict[str, Any]:
        body = {
            "title": "Course",
            "kind": "course",
            "prices": [{"amount": 9900, "currency": "CNY"}],
        }
        body.update(fields)
        response = self.client.post("/v1/products", json=body, headers=app.headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


class Shop:
    """An app with a buyer and products, ready to sell: the usual start of a payment test."""

    def __init__(self, build: Builders) -> None:
        self.build = build
        self.client = build.client
        self.app = build.app()
        self.buyer = build.buyer(self.app)
        self.course = build.product(
            self.app, title="Course", prices=[{"amount": 9900, "currency": "CNY"}]
        )

    def order(self, *products: dict[str, Any], **fields: Any) -> dict[str, Any]:
        items = [{"product_id": p["id"]} for p in (products or (self.course,))]
        body = {"user_id": self.buyer.id, "items": items, "currency": "CNY", **fields}
        response = self.client.post("/v1/orders", json=body, headers=self.app.headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def pay(self, order: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"channel": "test", **fields}
        response = self.client.post(
            f"/v1/orders/{order['id']}/payments", json=body, headers=self.app.headers
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def confirm(self, payment: dict[str, Any], **fields: Any) -> dict[str, Any]:
        response = self.client.post(f"/sandbox/test/payments/{payment['id']}/confirm", json=fields)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str) -> dict[str, Any]:
        response = self.client.get(path, headers=self.app.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


class CreatorShop(Shop):
    """A shop whose course is a creator's (the default share: 70 %), and finance to settle."""

    def __init__(self, build: Builders, course_title: str = "Course") -> None:
        super().__init__(build)
        self.creator = build.buyer(self.app, role="creator")
        self.course = build.product(
            self.app,
            title=course_title,
            creator_id=self.creator.id,
            prices=[{"amount": 9900, "currency": "CNY"}],
        )
        self.finance = build.staff(Role.FINANCE)

    def advance(self, clock: FrozenClock, days: int) -> None:
        """Time passes (tokens live an hour: everyone logs in again)."""
        clock.advance(timedelta(days=days))
        self.finance = self.build.relogin(self.finance)
        self.creator = self.build.relogin(self.creator)
        self.buyer = self.build.relogin(self.buyer)

    def paid_order(self) -> dict[str, Any]:
        order = self.order()
        self.confirm(self.pay(order))
        return order
