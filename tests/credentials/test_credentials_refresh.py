"""Stored gateway credentials applied while the processes run (`credentials.refresh`): another
process's change is picked up within KNOWPAY_CREDENTIALS_REFRESH_S; only the gateways it
touches are rebuilt and their breakers keep their state; a change that does not load leaves
the channels as they were and is logged once."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.auth.principals import Role
from knowpay.channels.alipay.signing import AlipayKeyError
from knowpay.channels.health import ChannelCircuitOpen
from knowpay.channels.registry import ChannelRegistry
from knowpay.channels.unionpay import transformers as unionpay_form
from knowpay.credentials import service as credentials
from knowpay.credentials.errors import StoredCredentialsUnreadable
from knowpay.credentials.models import GatewayCredential
from knowpay.credentials.refresh import CredentialsRefresher, credentials_refresher
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import AlipaySettings, Settings, StripeSettings
from knowpay.kit.crypto import SecretBox
from knowpay.kit.db import Database
from tests.builders import Builders
from tests.credentials.test_gateway_credentials import (
    GARBAGE_KEY,
    alipay_fields,
    alipay_request_params,
    assert_registry_signs_with_stored_alipay_key,
    put_alipay,
    store_bad_alipay_key_by_hand,
)
from tests.serving import server_environment

FAST_REFRESH_S = 0.05


def wait_until(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not applied in time"
        time.sleep(0.02)


@contextmanager
def running_process(
    settings: Settings, clock: FrozenClock, database: Database
) -> Iterator[tuple[FastAPI, TestClient]]:
    """Another knowpay process on the same database, started before the change."""
    fast = settings.model_copy(update={"credentials_refresh_s": FAST_REFRESH_S})
    app = create_app(fast, clock=clock, database=database, run_worker=False)
    with TestClient(app) as client:
        yield app, client


def alipay_section(settings: Settings, **fields: str) -> AlipaySettings:
    return AlipaySettings.model_validate({**settings.alipay.model_dump(), **fields})


def refresher_for(
    settings: Settings, database: Database, registry: ChannelRegistry
) -> CredentialsRefresher:
    return CredentialsRefresher(settings, database, registry, interval_s=FAST_REFRESH_S)


def test_a_running_process_signs_with_credentials_another_one_stored(
    settings: Settings, clock: FrozenClock, database: Database, client: TestClient, build: Builders
) -> None:
    with running_process(settings, clock, database) as (running, _):
        registry: ChannelRegistry = running.state.channel_registry
        assert "alipay_qr" not in registry.names()

        body = put_alipay(client, build.staff(Role.ADMIN), alipay_fields()).json()
        assert (body["applies"], body["applies_within_s"]) == ("live", 10.0)

        wait_until(lambda: "alipay_qr" in registry.names())
        assert_registry_signs_with_stored_alipay_key(registry, clock)
        # What requests read as settings is the new overlay too.
        assert running.state.settings.alipay.app_id == "2021000000000001"


def test_only_the_gateways_a_change_touches_are_rebuilt_and_breakers_keep_their_state(
    settings: Settings, clock: FrozenClock
) -> None:
    configured = alipay_section(settings, **alipay_fields())
    before = settings.model_copy(update={"alipay": configured})
    registry = ChannelRegistry.from_settings(before, clock)
    test_adapter, alipay_adapter = registry.adapter("test"), registry.adapter("alipay_qr")
    registry.health.breaker("alipay").open()

    assert registry.reconfigure(before) == []
    assert registry.adapter("alipay_qr") is alipay_adapter

    changed = before.model_copy(
        update={"alipay": configured.model_copy(update={"app_id": "2021000000000002"})}
    )
    assert registry.reconfigure(changed) == ["alipay"]
    assert registry.adapter("alipay_qr") is not alipay_adapter
    assert registry.adapter("test") is test_adapter
    with pytest.raises(ChannelCircuitOpen):  # the open breaker guards the new adapters
        alipay_request_params(registry, clock)
    registry.health.breaker("alipay").close()
    assert alipay_request_params(registry, clock)["app_id"] == "2021000000000002"

    assert registry.reconfigure(settings) == ["alipay"]  # the gateway no longer configured
    assert not [name for name in registry.names() if name.startswith("alipay")]
    registry.close()


def test_a_section_that_does_not_load_falls_back_when_the_registry_is_built(
    settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    from_env = settings.model_copy(update={"alipay": alipay_section(settings, **alipay_fields())})
    stored = from_env.model_copy(
        update={
            "alipay": alipay_section(settings, **{**alipay_fields(), "private_key": GARBAGE_KEY})
        }
    )
    with pytest.raises(AlipayKeyError):  # without a fallback the refusal is the caller's
        ChannelRegistry.from_settings(stored, clock)

    registry = ChannelRegistry.from_settings(stored, clock, fallback=from_env)

    assert registry.settings.alipay == from_env.alipay  # what requests read says so too
    assert_registry_signs_with_stored_alipay_key(registry, clock)  # built once, from env
    assert "the alipay credentials do not load (AlipayKeyError)" in caplog.text
    registry.close()


def test_a_change_that_does_not_load_keeps_its_channels_and_its_section_alone(
    settings: Settings, clock: FrozenClock
) -> None:
    before = settings.model_copy(update={"alipay": alipay_section(settings, **alipay_fields())})
    registry = ChannelRegistry.from_settings(before, clock)
    alipay_adapter = registry.adapter("alipay_qr")
    stripe = StripeSettings.model_validate(
        {"enabled": True, "secret_key": "sk_test_new", "webhook_secret": "whsec_new"}
    )
    bad_alipay = alipay_section(settings, **{**alipay_fields(), "private_key": GARBAGE_KEY})

    rebuilt = registry.reconfigure(
        before.model_copy(update={"alipay": bad_alipay, "stripe": stripe})
    )

    assert rebuilt == ["stripe"]
    assert registry.adapter("alipay_qr") is alipay_adapter
    assert registry.settings.alipay == before.alipay
    assert registry.settings.stripe == stripe
    assert "stripe" in registry.names()
    registry.close()


def test_a_field_removed_from_the_store_falls_back_to_the_environment(
    settings: Settings, clock: FrozenClock, database: Database, client: TestClient, build: Builders
) -> None:
    from_env = alipay_section(settings, **{**alipay_fields(), "app_id": "from-env"})
    base = settings.model_copy(update={"alipay": from_env})
    registry = ChannelRegistry.from_settings(base, clock)
    refresher = refresher_for(base, database, registry)
    admin = build.staff(Role.ADMIN)

    put_alipay(client, admin, {"app_id": "from-database"})
    assert refresher.check() == ["alipay"]
    assert alipay_request_params(registry, clock)["app_id"] == "from-database"

    put_alipay(client, admin, {"app_id": None})
    assert refresher.check() == ["alipay"]
    assert alipay_request_params(registry, clock)["app_id"] == "from-env"
    assert refresher.check() == []  # nothing changed since
    registry.close()


def test_only_a_real_change_is_published_to_the_settings_requests_read(
    settings: Settings, clock: FrozenClock, database: Database, client: TestClient, build: Builders
) -> None:
    registry = ChannelRegistry.from_settings(settings, clock)
    published: list[Settings] = []
    refresher = CredentialsRefresher(settings, database, registry, FAST_REFRESH_S, published.append)
    assert refresher.check() == []  # the first look finds what the process started with
    assert published == []

    put_alipay(client, build.staff(Role.ADMIN), alipay_fields())
    assert refresher.check() == ["alipay"]
    [now_read] = published
    assert now_read.alipay.app_id == "2021000000000001"
    registry.close()


def test_a_change_that_does_not_load_leaves_the_channels_and_is_logged_once(
    settings: Settings,
    clock: FrozenClock,
    database: Database,
    client: TestClient,
    build: Builders,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ChannelRegistry.from_settings(settings, clock)
    names = registry.names()
    store_unreadable_alipay_app_id(database, clock)
    refresher = refresher_for(settings, database, registry)
    with pytest.raises(StoredCredentialsUnreadable, match=r"alipay\.app_id"):
        refresher.check()
    assert refresher.check() == []  # the same refused change is not tried again
    assert registry.names() == names

    caplog.set_level(logging.ERROR, logger="knowpay.credentials")
    in_thread = refresher_for(settings, database, registry).start()
    time.sleep(FAST_REFRESH_S * 8)
    in_thread.stop()
    refusals = [r for r in caplog.records if "were not applied" in r.getMessage()]
    assert len(refusals) == 1
    assert "2021000000000009" not in caplog.text

    with database.session_scope() as session:
        session.query(GatewayCredential).delete()
    put_alipay(client, build.staff(Role.ADMIN), alipay_fields())
    assert refresher.check() == ["alipay"]  # the next change is applied
    assert_registry_signs_with_stored_alipay_key(registry, clock)
    registry.close()


def test_the_unionpay_form_posts_to_the_front_url_stored_while_running(
    settings: Settings, clock: FrozenClock, database: Database, client: TestClient, build: Builders
) -> None:
    new_front = "https://gateway.test.95516.com/gateway/api/frontTransReq.do"
    with running_process(settings, clock, database) as (running, running_client):
        response = client.put(
            "/v1/admin/gateways/unionpay",
            json={"fields": {"front_url": new_front}},
            headers=build.staff(Role.ADMIN).headers,
        )
        assert response.status_code == 200, response.text
        wait_until(lambda: running.state.settings.unionpay.front_url == new_front)

        page = running_client.get(
            "/forms/unionpay", params={"f": unionpay_form.encode_form({"orderId": "p1"})}
        )
    assert page.status_code == 200, page.text
    assert re.search(r'action="https://gateway\.test\.95516\.com/', page.text)
    policy = page.headers["content-security-policy"]
    assert "form-action https://gateway.test.95516.com;" in policy


def store_unreadable_alipay_app_id(database: Database, clock: FrozenClock) -> None:
    """A stored value sealed under another master key: no process here can open it."""
    other_key = SecretBox("another-master-key-0123456789-abcdefghijkl")
    with database.session_scope() as session:
        session.add(
            GatewayCredential(
                id="gcred_unreadable",
                gateway="alipay",
                field="app_id",
                value_sealed=other_key.seal(
                    "2021000000000009", context=credentials.sealing_context("alipay", "app_id")
                ),
                fingerprint=credentials.fingerprint("2021000000000009"),
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )


def test_a_running_worker_process_checks_the_stored_credentials_too(
    settings: Settings, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    env = server_environment(settings) | {
        "KNOWPAY_CREDENTIALS_REFRESH_S": str(FAST_REFRESH_S),
        "KNOWPAY_WORKER__JOBS_INTERVAL_S": "3600",
    }
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "knowpay.cli.main", "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "knowpay worker running" in log.read_text(), timeout_s=30)
        # Stored after it started: only the running check can come across it.
        store_unreadable_alipay_app_id(database, clock)
        wait_until(lambda: "were not applied" in log.read_text(), timeout_s=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    text = log.read_text()
    assert "INFO knowpay.worker [-]: worker started" in text
    assert text.count("INFO knowpay.worker [-]: worker stopped") == 1
    assert "alipay.app_id does not open" in text
    assert "2021000000000009" not in text


def test_a_refresh_interval_of_zero_leaves_credentials_to_the_start(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    registry = ChannelRegistry.from_settings(settings, clock)
    off = settings.model_copy(update={"credentials_refresh_s": 0.0})
    assert credentials_refresher(off, database, registry) is None
    assert settings.credentials_refresh_s == 10.0  # the default
    running = credentials_refresher(settings, database, registry)
    assert running is not None
    running.stop()
    registry.close()


def test_a_stored_gateway_that_does_not_load_holds_back_no_other_gateways_change(
    settings: Settings,
    clock: FrozenClock,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found in review: the refresher rebuilt every changed gateway at once, so one stored
    gateway that does not load refused every later change to the others."""
    box = SecretBox(settings.secret_key.get_secret_value())
    store_bad_alipay_key_by_hand(settings, database, clock)  # the API refuses it
    stored = credentials.with_stored_credentials(settings, database)  # as a process starts
    registry = ChannelRegistry.from_settings(stored, clock, fallback=settings)
    refresher = refresher_for(settings, database, registry)
    assert refresher.check() == []  # alipay stays as it started: on env settings
    with database.session_scope() as session:
        credentials.set_fields(
            session,
            box,
            settings,
            "stripe",
            {"enabled": "true", "secret_key": "sk_test_later", "webhook_secret": "whsec_later"},
            clock.now(),
        )

    assert refresher.check() == ["stripe"]

    assert "stripe" in registry.names()
    assert "alipay_page" not in registry.names()
    assert "the alipay credentials do not load" in caplog.text
    registry.close()
