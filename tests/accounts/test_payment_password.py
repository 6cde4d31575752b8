"""The 6-digit payment password: argon2id, 5 wrong tries lock it for 30 minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.accounts.models import User
from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from tests.builders import Builders, Caller

VERIFY = "/v1/users/me/payment-password/verify"
SET = "/v1/users/me/payment-password"


@pytest.fixture
def buyer(build: Builders, client: TestClient) -> Caller:
    buyer = build.buyer(build.app())
    response = client.put(SET, json={"new_password": "482913"}, headers=buyer.headers)
    assert response.status_code == 200, response.text
    return buyer


def test_is_stored_as_argon2id(buyer: Caller, database: Database) -> None:
    with database.session_scope(read_only=True) as session:
        user = session.scalars(select(User).where(User.id == buyer.id)).one()
        assert user.payment_password_hash is not None
        assert user.payment_password_hash.startswith("$argon2id$")


def test_the_right_password_verifies(client: TestClient, buyer: Caller) -> None:
    response = client.post(VERIFY, json={"password": "482913"}, headers=buyer.headers)
    assert response.status_code == 200
    assert response.json()["verified"] is True


def test_wrong_tries_count_down_then_lock_then_unlock_after_the_period(
    client: TestClient, buyer: Caller, clock: FrozenClock
) -> None:
    for remaining in (4, 3, 2, 1):
        response = client.post(VERIFY, json={"password": "000001"}, headers=buyer.headers)
        assert response.status_code == 403
        assert response.json()["code"] == "payment_password_incorrect"
        assert response.json()["remaining_tries"] == remaining
    fifth = client.post(VERIFY, json={"password": "000001"}, headers=buyer.headers)
    assert fifth.status_code == 423
    assert fifth.json()["code"] == "payment_password_locked"
    assert fifth.json()["locked_until"] == "2026-01-01T12:30:00Z"
    # Locked: even the right password is refused, and the lock does not move.
    clock.advance(timedelta(minutes=29, seconds=59))
    still = client.post(VERIFY, json={"password": "482913"}, headers=buyer.headers)
    assert still.status_code == 423
    assert still.json()["locked_until"] == "2026-01-01T12:30:00Z"
    clock.advance(timedelta(seconds=1))
    assert (
        client.post(VERIFY, json={"password": "482913"}, headers=buyer.headers).status_code == 200
    )


def test_a_success_resets_the_count(client: TestClient, buyer: Caller) -> None:
    for _ in range(4):
        client.post(VERIFY, json={"password": "111112"}, headers=buyer.headers)
    assert (
        client.post(VERIFY, json={"password": "482913"}, headers=buyer.headers).status_code == 200
    )
    response = client.post(VERIFY, json={"password": "111112"}, headers=buyer.headers)
    assert response.json()["remaining_tries"] == 4


def test_changing_needs_the_current_password_and_counts_wrong_tries(
    client: TestClient, buyer: Caller
) -> None:
    no_current = client.put(SET, json={"new_password": "730215"}, headers=buyer.headers)
    assert no_current.status_code == 403
    wrong = client.put(
        SET, json={"new_password": "730215", "current_password": "999990"}, headers=buyer.headers
    )
    assert wrong.json()["remaining_tries"] == 4
    ok = client.put(
        SET, json={"new_password": "730215", "current_password": "482913"}, headers=buyer.headers
    )
    assert ok.status_code == 200
    assert (
        client.post(VERIFY, json={"password": "730215"}, headers=buyer.headers).status_code == 200
    )


@pytest.mark.parametrize(
    "weak", ["12345", "1234567", "abcdef", "111111", "123456", "654321", 123456]
)
def test_only_six_digits_that_are_not_trivial(
    client: TestClient, build: Builders, weak: object
) -> None:
    buyer = build.buyer(build.app())
    response = client.put(SET, json={"new_password": weak}, headers=buyer.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "new_password"


def test_verifying_before_setting_says_so(client: TestClient, build: Builders) -> None:
    buyer = build.buyer(build.app())
    response = client.post(VERIFY, json={"password": "482913"}, headers=buyer.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "payment_password_not_set"


def test_an_app_key_cannot_use_the_buyer_endpoints(client: TestClient, build: Builders) -> None:
    app = build.app()
    assert client.post(VERIFY, json={"password": "482913"}, headers=app.headers).status_code == 403


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FINANCE, Role.SUPPORT])
def test_staff_have_no_payment_password(client: TestClient, build: Builders, role: Role) -> None:
    """Found by an authorization audit: an admin could set one and try it (API.md: buyer)."""
    staff = build.staff(role)
    put = client.put(SET, json={"new_password": "582917"}, headers=staff.headers)
    assert (put.status_code, put.json()["code"]) == (403, "forbidden")
    tried = client.post(VERIFY, json={"password": "582917"}, headers=staff.headers)
    assert (tried.status_code, tried.json()["code"]) == (403, "forbidden")
    creator = build.buyer(build.app(), role="creator")
    assert client.put(SET, json={"new_password": "582917"}, headers=creator.headers).is_success
