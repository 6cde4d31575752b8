"""Login, tokens and API keys: who may call, and what a caller may see."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.accounts.models import ApiKey, User
from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.crypto import sha256_hex
from knowpay.kit.db import Database
from tests.builders import Builders


def test_login_with_json_or_form_returns_a_bearer_token(
    client: TestClient, build: Builders
) -> None:
    app = build.app()
    buyer = build.buyer(app, email="Li.Lei@Example.com", password="correct horse")
    for response in (
        client.post(
            "/v1/auth/token", json={"username": "li.lei@example.com", "password": "correct horse"}
        ),
        client.post(
            "/v1/auth/token", data={"username": "LI.LEI@example.com", "password": "correct horse"}
        ),
    ):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] > 0
        me = client.get("/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.json()["id"] == buyer.id


def test_wrong_password_is_401_problem(client: TestClient, build: Builders) -> None:
    app = build.app()
    buyer = build.buyer(app)
    for username in (buyer.email, "nobody@example.com"):
        response = client.post(
            "/v1/auth/token", json={"username": username, "password": "wrong-password"}
        )
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_credentials"


def test_passwords_are_stored_as_argon2id(build: Builders, database: Database) -> None:
    buyer = build.buyer(build.app(), password="my secret words")
    with database.session_scope(read_only=True) as session:
        user = session.get(User, buyer.id)
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert "my secret words" not in user.password_hash


def test_expired_token_is_401(client: TestClient, build: Builders, clock: FrozenClock) -> None:
    buyer = build.buyer(build.app())
    assert client.get("/v1/users/me", headers=buyer.headers).status_code == 200
    clock.advance(timedelta(hours=2))
    response = client.get("/v1/users/me", headers=buyer.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


def test_forged_token_is_401(client: TestClient, build: Builders, clock: FrozenClock) -> None:
    buyer = build.buyer(build.app())
    now = int(clock.now().timestamp())
    claims = {"iss": "knowpay", "sub": buyer.id, "role": "admin", "iat": now, "exp": now + 600}
    forged = jwt.encode(claims, "not-the-server-key-but-long-enough-32b", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (forged, unsigned, "garbage", buyer.headers["Authorization"].split()[1] + "x"):
        response = client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json()["code"] == "invalid_token"


def test_missing_credentials_are_401_with_www_authenticate(client: TestClient) -> None:
    response = client.get("/v1/products")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_buyer_reading_another_buyers_record_gets_404(
    client: TestClient, build: Builders
) -> None:
    app = build.app()
    alice, bob = build.buyer(app), build.buyer(app)
    assert client.get(f"/v1/users/{alice.id}", headers=alice.headers).status_code == 200
    response = client.get(f"/v1/users/{bob.id}", headers=alice.headers)
    assert response.status_code == 404
    assert bob.email not in response.text


def test_an_app_sees_only_the_users_it_registered(client: TestClient, build: Builders) -> None:
    web, mobile = build.app("web"), build.app("mobile")
    web_buyer = build.buyer(web)
    mobile_buyer = build.buyer(mobile)
    assert client.get(f"/v1/users/{web_buyer.id}", headers=web.headers).status_code == 200
    assert client.get(f"/v1/users/{mobile_buyer.id}", headers=web.headers).status_code == 404
    listed = client.get("/v1/users", headers=web.headers).json()["data"]
    assert [u["id"] for u in listed] == [web_buyer.id]


def test_staff_role_checks_are_403(client: TestClient, build: Builders) -> None:
    app = build.app()
    buyer = build.buyer(app)
    finance, support, admin = (
        build.staff(Role.FINANCE),
        build.staff(Role.SUPPORT),
        build.staff(Role.ADMIN),
    )
    product = {"title": "x", "kind": "course", "prices": [{"amount": 100, "currency": "CNY"}]}
    for caller in (buyer, finance, support):
        response = client.post("/v1/products", json=product, headers=caller.headers)
        assert response.status_code == 403, caller
        assert response.json()["code"] == "forbidden"
        assert client.get("/v1/admin/apps", headers=caller.headers).status_code == 403
    assert client.get("/v1/admin/apps", headers=app.headers).status_code == 403
    assert client.post("/v1/products", json=product, headers=admin.headers).status_code == 201
    assert client.get("/v1/admin/apps", headers=admin.headers).status_code == 200
    # Staff may read any user.
    assert client.get(f"/v1/users/{buyer.id}", headers=support.headers).status_code == 200


def test_only_apps_register_buyers(client: TestClient, build: Builders) -> None:
    buyer = build.buyer(build.app())
    response = client.post(
        "/v1/users",
        json={"email": "x@example.com", "password": "long-enough"},
        headers=buyer.headers,
    )
    assert response.status_code == 403


def test_a_duplicate_email_is_409(client: TestClient, build: Builders) -> None:
    app = build.app()
    build.buyer(app, email="same@example.com")
    response = client.post(
        "/v1/users",
        json={"email": "SAME@example.com", "password": "long-enough"},
        headers=app.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


def test_api_key_is_shown_once_and_stored_only_as_a_hash(
    client: TestClient, build: Builders, database: Database
) -> None:
    admin = build.staff(Role.ADMIN)
    created = client.post("/v1/admin/apps", json={"name": "mini-program"}, headers=admin.headers)
    assert created.status_code == 201
    key = created.json()["api_key"]
    assert key.startswith("kp_live_")
    listed = client.get("/v1/admin/apps", headers=admin.headers)
    assert key not in listed.text
    with database.session_scope(read_only=True) as session:
        rows = session.scalars(select(ApiKey)).all()
        assert [r.key_hash for r in rows] == [sha256_hex(key)]
        # Only a short, non-secret prefix is kept to tell keys apart.
        assert rows[0].display_prefix == key[:12]
    assert client.get("/v1/products", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_a_revoked_or_unknown_api_key_is_401(
    client: TestClient, build: Builders, database: Database
) -> None:
    from knowpay.accounts import service

    app = build.app()
    assert client.get("/v1/products", headers=app.headers).status_code == 200
    with database.session_scope() as session:
        assert service.revoke_api_keys(session, app_id=app.id, now=build.clock.now()) == 1
    response = client.get("/v1/products", headers=app.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    unknown = client.get("/v1/products", headers={"Authorization": "Bearer kp_live_unknown"})
    assert unknown.json()["code"] == "invalid_api_key"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_a_login_body_nested_too_deep_to_parse_is_a_400_not_a_500(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = b"[" * 5000 + b"]" * 5000

    response = client.post("/v1/auth/token", content=body, headers=headers)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_json"
