"""Secrets at rest: the database files hold no private key, API v3 key or webhook secret in
plaintext; `knowpay secrets rotate` moves every sealed value to a new master key and the
service started with that key keeps signing webhooks and gateway requests."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, text

from knowpay.app import create_app
from knowpay.audit.models import AuditRecord
from knowpay.auth.principals import Role
from knowpay.credentials import service as credentials
from knowpay.credentials.errors import StoredCredentialsUnreadable
from knowpay.credentials.models import GatewayCredential
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretBox, derive_key, secret_box
from knowpay.kit.db import Database
from knowpay.kit.idempotency_models import IdempotencyRecord
from knowpay.webhooks.models import WebhookEndpoint
from knowpay.webhooks.signing import verify_signature
from knowpay.worker.runner import Worker
from tests.builders import Builders, Caller, Shop
from tests.credentials.keys import key_pair
from tests.credentials.test_gateway_credentials import (
    alipay_fields,
    assert_alipay_signs,
    invoke_cli,
)
from tests.webhooks.receiver import receiver

NEW_KEY = "rotated-master-key-0123456789-abcdefghijklmnopq"
APIV3_KEY = "apiv3key0123456789abcdefghijklmn"


def _store_gateways(client: TestClient, admin: Caller) -> None:
    alipay = client.put(
        "/v1/admin/gateways/alipay", json={"fields": alipay_fields()}, headers=admin.headers
    )
    assert alipay.status_code == 200, alipay.text
    wechat = client.put(
        "/v1/admin/gateways/wechatpay",
        json={"fields": {"apiv3_key": APIV3_KEY, "mchid": "1900000001"}},
        headers=admin.headers,
    )
    assert wechat.status_code == 200, wechat.text


def _endpoint(client: TestClient, shop: Shop, url: str, key: str | None = None) -> dict[str, Any]:
    headers = {**shop.app.headers, **({"Idempotency-Key": key} if key else {})}
    response = client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": ["order.paid"]}, headers=headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _database_bytes(settings: Settings) -> bytes:
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_the_database_files_hold_no_plaintext_secret(
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("greps the SQLite database file and its write-ahead log")
    caplog.set_level(logging.DEBUG)
    admin = build.staff(Role.ADMIN)
    _store_gateways(client, admin)
    shop = Shop(build)
    endpoint = _endpoint(client, shop, "https://example.com/hooks", key="create-hook-1")
    replayed = _endpoint(client, shop, "https://example.com/hooks", key="create-hook-1")
    assert replayed == endpoint  # the stored (sealed) response replays the secret once more
    rotated = client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
        headers={**shop.app.headers, "Idempotency-Key": "rotate-hook-1"},
    ).json()
    new_app = client.post(
        "/v1/admin/apps",
        json={"name": "back-office"},
        headers={**admin.headers, "Idempotency-Key": "new-app-1"},
    ).json()

    secrets = [
        key_pair("merchant").private_pem,
        *key_pair("merchant").body_lines,
        APIV3_KEY,
        endpoint["secret"],
        rotated["secret"],
        new_app["api_key"],
    ]
    for stage in ("open", "closed"):
        raw = _database_bytes(settings)
        assert b"v2:" in raw  # sealed values are there (so these are the right files)
        for secret in secrets:
            assert secret.encode() not in raw, f"plaintext secret in the database ({stage})"
        database.dispose()  # closing the last connection checkpoints the WAL into the file
    for secret in secrets:
        assert secret not in caplog.text
    with database.session_scope(read_only=True) as session:
        for row in session.scalars(select(GatewayCredential)).all():
            assert row.value_sealed.startswith("v2:")
        stored = session.scalars(select(IdempotencyRecord.response_body)).all()
        assert stored
        assert all(body is not None and body.startswith(b"v2:") for body in stored)


def test_listings_and_logs_never_show_secrets(
    client: TestClient, build: Builders, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = build.staff(Role.ADMIN)
    _store_gateways(client, admin)
    shop = Shop(build)
    endpoint = _endpoint(client, shop, "https://example.com/hooks")
    texts = [
        client.get("/v1/admin/gateways", headers=admin.headers).text,
        client.get("/v1/admin/gateways/alipay", headers=admin.headers).text,
        client.get("/v1/admin/gateways/wechatpay", headers=admin.headers).text,
        client.get("/v1/webhook-endpoints", headers=shop.app.headers).text,
        client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=shop.app.headers).text,
        client.get("/v1/admin/audit?limit=100", headers=admin.headers).text,
    ]
    listed = json.loads(texts[3])["data"]
    assert [e["secret"] for e in listed] == [None]
    for secret in (
        *key_pair("merchant").body_lines,
        APIV3_KEY,
        endpoint["secret"],
    ):
        assert all(secret not in body for body in texts)
        assert secret not in caplog.text


def _rotate(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    return invoke_cli(settings, monkeypatch, "secrets", "rotate", *args, "--json")


def test_rotation_re_encrypts_everything_and_the_new_key_keeps_it_all_working(
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old_key = settings.secret_key.get_secret_value()
    admin = build.staff(Role.ADMIN)
    _store_gateways(client, admin)
    shop = Shop(build)
    with receiver() as hooks:
        current = _endpoint(client, shop, hooks.url, key="hook-current")
        legacy = _endpoint(client, shop, hooks.url)
        # An endpoint whose secret was sealed before AES-GCM, with the old Fernet box.
        legacy_secret = "whsec_sealed_by_the_fernet_box_of_old"
        fernet = Fernet(base64.urlsafe_b64encode(derive_key(old_key, "knowpay/secret-box/v1")))
        with database.engine.begin() as connection:
            connection.execute(
                text("UPDATE webhook_endpoints SET secret_sealed = :sealed WHERE id = :id"),
                {"sealed": fernet.encrypt(legacy_secret.encode()).decode(), "id": legacy["id"]},
            )

        result = _rotate(settings, monkeypatch, "--new-key", NEW_KEY)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        new_box = SecretBox(NEW_KEY)
        assert report["key_id"] == new_box.key_id
        assert report["previous_key_id"] == SecretBox(old_key).key_id
        assert report["webhook_secrets"] == 2
        assert report["gateway_credentials"] == 6
        assert report["stored_responses"] >= 1
        assert NEW_KEY not in result.output

        with database.session_scope(read_only=True) as session:
            sealed = [e.secret_sealed for e in session.scalars(select(WebhookEndpoint)).all()]
            sealed += [c.value_sealed for c in session.scalars(select(GatewayCredential)).all()]
            [rotation] = session.scalars(
                select(AuditRecord).where(AuditRecord.action == "secrets.rotated")
            ).all()
        assert len(sealed) == 8
        assert all(new_box.is_current(value) for value in sealed)
        assert rotation.actor.startswith("cli:")
        assert NEW_KEY not in (rotation.after_json or "") + (rotation.before_json or "")

        # The old key no longer opens anything: a process still running it refuses to start.
        with pytest.raises(StoredCredentialsUnreadable):
            create_app(settings, clock=clock, database=database, run_worker=False)

        rotated = settings.model_copy(update={"secret_key": SecretStr(NEW_KEY)})
        assert_alipay_signs(rotated, database, clock)
        new_app = create_app(rotated, clock=clock, database=database, run_worker=False)
        with TestClient(new_app) as new_client:
            again = new_client.post(
                "/v1/webhook-endpoints",
                json={"url": hooks.url, "events": ["order.paid"]},
                headers={**shop.app.headers, "Idempotency-Key": "hook-current"},
            )
            assert again.headers.get("idempotent-replayed") == "true"
            assert again.json() == current  # the stored response still opens
        assert new_app.state.settings.wechatpay.apiv3_key.get_secret_value() == APIV3_KEY

        shop.confirm(shop.pay(shop.order()))
        worker = Worker(rotated, database, clock, new_app.state.channel_registry)
        while worker.dispatcher.run_once():
            pass
        worker.deliverer.run_once()
        hooks.wait_for(2)
        got = list(hooks.received)
    now = clock.now().timestamp()
    for secret in (current["secret"], legacy_secret):
        assert any(
            verify_signature(r.body, r.headers["knowpay-signature"], secret, now=now) for r in got
        )


def test_rotation_refuses_a_short_key_and_changes_nothing_when_a_value_does_not_open(
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _store_gateways(client, build.staff(Role.ADMIN))
    short = _rotate(settings, monkeypatch, "--new-key", "short")
    assert short.exit_code == 1
    assert json.loads(short.output)["error"]["code"] == "weak_master_key"
    with database.session_scope(read_only=True) as session:
        before = sorted(c.value_sealed for c in session.scalars(select(GatewayCredential)).all())
    wrong_old = _rotate(
        settings, monkeypatch, "--new-key", NEW_KEY, "--old-key", "not-the-key-0123456789-abcdefghi"
    )
    assert wrong_old.exit_code == 1
    assert json.loads(wrong_old.output)["error"]["code"] == "secret_unreadable"
    with database.session_scope(read_only=True) as session:
        after = sorted(c.value_sealed for c in session.scalars(select(GatewayCredential)).all())
    assert after == before


def test_rotation_in_the_documented_order_never_leaves_a_value_no_process_can_open(
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old_key = settings.secret_key
    _store_gateways(client, build.staff(Role.ADMIN))  # sealed under the old key
    # 1. Every process restarts on the new key, the old one listed as previous.
    both = settings.model_copy(
        update={"secret_key": SecretStr(NEW_KEY), "previous_secret_keys": [old_key]}
    )
    restarted = create_app(both, clock=clock, database=database, run_worker=False)
    assert restarted.state.settings.alipay.app_id == "2021000000000001"  # the old seal opens
    with database.session_scope() as session:  # a change made meanwhile: under the new key
        credentials.set_fields(
            session, secret_box(both), both, "alipay", {"app_id": "2021000000000002"}, clock.now()
        )
    # 2. The rotation re-seals what the old key still holds.
    monkeypatch.setenv("KNOWPAY_PREVIOUS_SECRET_KEYS", json.dumps([old_key.get_secret_value()]))
    result = _rotate(both, monkeypatch, "--new-key", NEW_KEY)
    assert result.exit_code == 0, result.output
    with database.session_scope(read_only=True) as session:
        sealed = [c.value_sealed for c in session.scalars(select(GatewayCredential)).all()]
    assert len(sealed) == 6
    assert all(SecretBox(NEW_KEY).is_current(value) for value in sealed)
    # 3. The old key can go.
    only_new = both.model_copy(update={"previous_secret_keys": []})
    app = create_app(only_new, clock=clock, database=database, run_worker=False)
    assert app.state.settings.alipay.app_id == "2021000000000002"
