"""Gateway credentials stored encrypted: set by an admin (API or CLI), never echoed, laid over
the settings at start-up so the gateways sign with them (and while running:
test_credentials_refresh.py)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from knowpay.app import create_app
from knowpay.audit.models import AuditRecord
from knowpay.auth.principals import Role
from knowpay.channels.alipay import signing
from knowpay.channels.registry import ChannelRegistry
from knowpay.channels.types import CreatePaymentRequest
from knowpay.cli.main import app as cli
from knowpay.credentials import service as credentials
from knowpay.credentials.errors import StoredCredentialsUnreadable
from knowpay.credentials.models import GatewayCredential
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.crypto import SecretBox
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from tests.builders import Builders, Caller
from tests.credentials.keys import key_pair

runner = CliRunner()


def alipay_fields() -> dict[str, str]:
    return {
        "app_id": "2021000000000001",
        "private_key": key_pair("merchant").private_pem,
        "alipay_public_key": key_pair("alipay").public_pem,
        "gateway_url": "https://openapi-sandbox.example.com/gateway.do",
    }


def put_alipay(client: TestClient, admin: Caller, fields: dict[str, Any]) -> Any:
    return client.put("/v1/admin/gateways/alipay", json={"fields": fields}, headers=admin.headers)


def assert_alipay_signs(settings: Settings, database: Database, clock: FrozenClock) -> None:
    """A fresh app built on this database has Alipay, signing with the stored merchant key."""
    app = create_app(settings, clock=clock, database=database, run_worker=False)
    assert_registry_signs_with_stored_alipay_key(app.state.channel_registry, clock)


def alipay_request_params(registry: ChannelRegistry, clock: FrozenClock) -> dict[str, str]:
    """The signed parameters of an Alipay page payment the registry's channel would open."""
    assert {"alipay_page", "alipay_wap", "alipay_qr"} <= set(registry.names())
    channel = registry.for_gateway("alipay")
    assert channel is not None
    result = channel.create_payment(
        CreatePaymentRequest(
            out_trade_no="pay_credentials_test",
            amount=Money(9900, "CNY"),
            subject="Course",
            notify_url="http://testserver/notify/alipay",
            expires_at=clock.now() + timedelta(minutes=30),
            return_url="http://testserver/return/pay_credentials_test",
        )
    )
    url = result.action.url
    assert url is not None
    assert url.startswith("https://openapi-sandbox.example.com/gateway.do?")
    return dict(parse_qsl(urlsplit(url).query))


def assert_registry_signs_with_stored_alipay_key(
    registry: ChannelRegistry, clock: FrozenClock
) -> None:
    params = alipay_request_params(registry, clock)
    assert params["app_id"] == "2021000000000001"
    public = signing.load_public_key(key_pair("merchant").public_pem)
    assert signing.verify(signing.request_signing_string(params), params["sign"], public)


def test_an_admin_stores_credentials_and_the_gateway_signs_with_them_after_a_restart(
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
) -> None:
    assert "alipay_page" not in client.app.state.channel_registry.names()  # type: ignore[attr-defined]
    admin = build.staff(Role.ADMIN)
    response = put_alipay(client, admin, alipay_fields())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "gateway_credentials"
    assert (body["applies"], body["applies_within_s"]) == ("live", 10.0)
    assert [f["name"] for f in body["fields"]] == [
        "alipay_public_key",
        "app_id",
        "gateway_url",
        "private_key",
    ]
    stored = {f["name"]: f["fingerprint"] for f in body["fields"]}
    assert stored["private_key"] == credentials.fingerprint(key_pair("merchant").private_pem)
    assert key_pair("merchant").body_lines[3] not in response.text

    listed = client.get("/v1/admin/gateways", headers=admin.headers).json()
    alipay = next(g for g in listed["data"] if g["gateway"] == "alipay")
    assert alipay["fields"] == body["fields"]
    assert {"wechatpay", "unionpay", "stripe", "paypal"} <= {g["gateway"] for g in listed["data"]}
    one = client.get("/v1/admin/gateways/alipay", headers=admin.headers).json()
    assert one == body

    assert_alipay_signs(settings, database, clock)

    with database.session_scope(read_only=True) as session:
        [record] = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "gateway_credentials.updated")
        ).all()
    assert record.actor == f"staff:{admin.id}"
    assert record.object_id == "alipay"
    assert key_pair("merchant").body_lines[3] not in (record.after_json or "")


def test_only_admins_may_see_or_set_credentials(client: TestClient, build: Builders) -> None:
    app = build.app()
    finance = build.staff(Role.FINANCE)
    for caller in (app, finance, build.buyer(app)):
        assert client.get("/v1/admin/gateways", headers=caller.headers).status_code == 403
        assert put_alipay(client, caller, {"app_id": "x"}).status_code == 403
    assert client.get("/v1/admin/gateways").status_code == 401


def test_bad_input_is_refused_without_echoing_values(
    client: TestClient, build: Builders, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = build.staff(Role.ADMIN)
    unknown = client.put(
        "/v1/admin/gateways/bitcoin", json={"fields": {"x": "y"}}, headers=admin.headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_gateway"
    field = put_alipay(client, admin, {"privat_key": "sk_live_should_not_echo"})
    assert field.status_code == 422
    assert field.json()["code"] == "invalid_gateway_credentials"
    assert field.json()["fields"] == ["privat_key"]
    assert "sk_live_should_not_echo" not in field.text
    bad_pem = "not-a-pem-but-a-secret-0123456789"
    value = put_alipay(client, admin, {"private_key": bad_pem})
    assert value.status_code == 422
    assert value.json()["fields"] == ["private_key"]
    assert bad_pem not in value.text
    typed = put_alipay(client, admin, {"timeout_s": "soon-secret-abc"})
    assert typed.status_code == 422
    assert "soon-secret-abc" not in typed.text
    for secret in ("sk_live_should_not_echo", bad_pem, "soon-secret-abc"):
        assert secret not in caplog.text


@pytest.mark.parametrize("fields", [{"\ud800": "x"}, {"seller_id": "2088\ud800"}])
def test_a_lone_surrogate_in_a_field_or_value_is_refused_and_nothing_is_stored(
    client: TestClient, build: Builders, fields: dict[str, str]
) -> None:
    # Found by fuzzing the running demo over HTTP: JSON may escape a lone surrogate
    # ("\ud800"), which cannot be encoded; as an unknown field's name it made the problem's
    # own body unwritable (a 500).
    admin = build.staff(Role.ADMIN)
    response = client.put(
        "/v1/admin/gateways/alipay",
        content=json.dumps({"fields": fields}),  # ASCII, the surrogate escaped as JSON allows
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    listed = client.get("/v1/admin/gateways/alipay", headers=admin.headers).json()
    assert listed["fields"] == []


def test_a_null_field_removes_what_was_stored(client: TestClient, build: Builders) -> None:
    admin = build.staff(Role.ADMIN)
    assert put_alipay(client, admin, {"app_id": "1", "seller_id": "2088"}).status_code == 200
    after = put_alipay(client, admin, {"seller_id": None}).json()
    assert [f["name"] for f in after["fields"]] == ["app_id"]


def test_stored_values_win_over_environment_values(
    settings: Settings, database: Database, clock: FrozenClock, build: Builders
) -> None:
    admin = build.staff(Role.ADMIN)
    put_alipay(build.client, admin, {"app_id": "from-database"})
    env = settings.model_copy(
        update={
            "alipay": settings.alipay.model_copy(update={"app_id": "from-env", "seller_id": "s"})
        }
    )
    merged = credentials.with_stored_credentials(env, database)
    assert merged.alipay.app_id == "from-database"
    assert merged.alipay.seller_id == "s"  # what is not stored still comes from env/TOML
    assert env.alipay.app_id == "from-env"  # the original settings are not changed


def test_the_cli_stores_a_key_from_a_file_and_lists_fingerprints(
    settings: Settings,
    database: Database,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pem = tmp_path / "merchant.pem"
    pem.write_text(key_pair("merchant").private_pem + "\n")
    public = tmp_path / "alipay.pem"
    public.write_text(key_pair("alipay").public_pem + "\n")
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KNOWPAY_SECRET_KEY", settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    try:
        result = runner.invoke(
            cli,
            [
                "gateways",
                "set",
                "alipay",
                "--field",
                "app_id=2021000000000001",
                "--field",
                f"private_key=@{pem}",
                "--field",
                f"alipay_public_key=@{public}",
                "--field",
                "gateway_url=https://openapi-sandbox.example.com/gateway.do",
                "--json",
            ],
        )
        listed = runner.invoke(cli, ["gateways", "list", "--json"])
        refused = runner.invoke(cli, ["gateways", "set", "alipay", "--field", "nope=1", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {f["field"] for f in out["fields"]} == {
        "app_id",
        "private_key",
        "alipay_public_key",
        "gateway_url",
    }
    assert key_pair("merchant").body_lines[3] not in result.output + listed.output
    assert {row["fingerprint"] for row in json.loads(listed.output)} >= {
        credentials.fingerprint(key_pair("merchant").private_pem)
    }
    assert refused.exit_code == 1
    assert json.loads(refused.output)["error"]["code"] == "invalid_gateway_credentials"
    assert_alipay_signs(settings, database, clock)
    with database.session_scope(read_only=True) as session:
        actors = session.scalars(
            select(AuditRecord.actor).where(AuditRecord.action == "gateway_credentials.updated")
        ).all()
    assert len(actors) == 1
    assert actors[0].startswith("cli:")


def test_a_process_with_the_wrong_master_key_refuses_to_start(
    client: TestClient, build: Builders, settings: Settings, database: Database
) -> None:
    put_alipay(client, build.staff(Role.ADMIN), alipay_fields())
    wrong = settings.model_copy(
        update={"secret_key": SecretStr("some-other-key-0123456789-abcdefghijkl")}
    )
    with pytest.raises(StoredCredentialsUnreadable, match="alipay") as refused:
        create_app(wrong, database=database, run_worker=False)
    assert key_pair("merchant").body_lines[3] not in str(refused.value)
    with database.session_scope(read_only=True) as session:
        assert len(session.scalars(select(GatewayCredential)).all()) == 4


GARBAGE_KEY = "-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZS1rZXktYm9keQ==\n-----END PRIVATE KEY-----\n"
"""PEM-shaped (the settings take it), but no key: the Alipay adapter cannot load it."""


def store_bad_alipay_key_by_hand(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    """Alipay stored whole with GARBAGE_KEY, past the API's check (as SQL by hand would)."""
    box = SecretBox(settings.secret_key.get_secret_value())
    with database.session_scope() as session:
        for field, value in {**alipay_fields(), "private_key": GARBAGE_KEY}.items():
            session.add(
                GatewayCredential(
                    id=f"gcred_{field}",
                    gateway="alipay",
                    field=field,
                    value_sealed=box.seal(
                        value, context=credentials.sealing_context("alipay", field)
                    ),
                    fingerprint=credentials.fingerprint(value),
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )


def invoke_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """`knowpay …` against the test database, with the test master key."""
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KNOWPAY_SECRET_KEY", settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    try:
        return runner.invoke(cli, list(args))
    finally:
        get_settings.cache_clear()


def test_a_key_that_does_not_load_is_refused_and_nothing_is_stored(
    client: TestClient, build: Builders, database: Database
) -> None:
    admin = build.staff(Role.ADMIN)

    refused = put_alipay(client, admin, {**alipay_fields(), "private_key": GARBAGE_KEY})

    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_gateway_credentials"
    assert "do not load" in refused.json()["detail"]
    assert "Z2FyYmFnZS1rZXktYm9keQ" not in refused.text
    with database.session_scope(read_only=True) as session:
        assert session.scalars(select(GatewayCredential)).all() == []
    assert put_alipay(client, admin, alipay_fields()).status_code == 200  # a good one is taken


def test_a_key_that_does_not_load_with_what_is_stored_is_refused_alone_too(
    client: TestClient,
    build: Builders,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: the check built the gateway from the process's settings, without the
    fields already stored, so a bad key sent alone passed (the gateway looked unconfigured)."""
    admin = build.staff(Role.ADMIN)
    assert put_alipay(client, admin, alipay_fields()).status_code == 200
    with database.session_scope(read_only=True) as session:
        before = {c.field: c.fingerprint for c in session.scalars(select(GatewayCredential))}

    refused = put_alipay(client, admin, {"private_key": GARBAGE_KEY})

    assert refused.status_code == 422
    assert refused.json()["fields"] == ["private_key"]
    with database.session_scope(read_only=True) as session:
        after = {c.field: c.fingerprint for c in session.scalars(select(GatewayCredential))}
    assert after == before
    result = invoke_cli(
        settings, monkeypatch, "gateways", "set", "alipay", "--field", f"private_key={GARBAGE_KEY}"
    )
    assert result.exit_code != 0
    assert "invalid_gateway_credentials" in result.output
    with database.session_scope(read_only=True) as session:
        assert {
            c.field: c.fingerprint for c in session.scalars(select(GatewayCredential))
        } == before


def test_a_stored_key_that_does_not_load_leaves_its_gateway_on_env_settings_not_every_process_down(
    build: Builders,
    settings: Settings,
    database: Database,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_bad_alipay_key_by_hand(settings, database, clock)  # stored before the check

    app = create_app(settings, clock=clock, database=database, run_worker=False)

    registry = app.state.channel_registry
    assert "alipay_page" not in registry.names()  # env has no Alipay: as if nothing stored
    assert "test" in registry.names()
    assert "the alipay credentials do not load" in caplog.text
    assert "Z2FyYmFnZS1rZXktYm9keQ" not in caplog.text


def test_values_sealed_under_a_previous_master_key_open_while_it_is_listed(
    client: TestClient, build: Builders, settings: Settings, database: Database, clock: FrozenClock
) -> None:
    old_key = settings.secret_key
    put_alipay(client, build.staff(Role.ADMIN), alipay_fields())  # sealed under the old key
    rotated = settings.model_copy(
        update={
            "secret_key": SecretStr("the-new-master-key-0123456789-abcdefgh"),
            "previous_secret_keys": [old_key],
        }
    )

    assert_alipay_signs(rotated, database, clock)
    new_app = create_app(rotated, clock=clock, database=database, run_worker=False)
    assert (
        new_app.state.secret_box.key_id == SecretBox(rotated.secret_key.get_secret_value()).key_id
    )
    without_old = rotated.model_copy(update={"previous_secret_keys": []})
    with pytest.raises(StoredCredentialsUnreadable, match="KNOWPAY_PREVIOUS_SECRET_KEYS"):
        create_app(without_old, database=database, run_worker=False)
