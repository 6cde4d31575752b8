"""In production an app cannot make knowpay send webhooks into knowpay's own network
(server-side request forgery): https to public hosts only, checked again before each send."""

from __future__ import annotations

import socket

import httpx
import pytest
from fastapi.testclient import TestClient

from knowpay.app import create_app
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretBox
from knowpay.kit.db import Database
from knowpay.webhooks import targets
from knowpay.webhooks.delivery import DeliveryJob, DeliveryPolicy, WebhookDeliverer
from tests.builders import Builders

REFUSED = [
    "http://hooks.example.com/knowpay",  # not https
    "https://localhost/hook",
    "https://api.localhost/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://127.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.8/hook",
    "https://192.168.1.20:8443/hook",
    "https://[::1]/hook",
    "https://[fd00::1]/hook",
    "https://0.0.0.0/hook",
    # IPv6 forms that carry an internal IPv4 address (NAT64, 6to4, compatible, mapped)
    "https://[64:ff9b::a9fe:a9fe]/latest",
    "https://[2002:a9fe:a9fe::]/latest",
    "https://[::127.0.0.1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    # numeric forms of 127.0.0.1 that resolvers read
    "https://2130706433/hook",
    "https://0x7f.1/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_urls_inside_the_network_or_not_https_are_refused(url: str) -> None:
    with pytest.raises(targets.WebhookTargetRefused):
        targets.check_url(url)


def test_a_public_https_url_is_accepted() -> None:
    targets.check_url("https://hooks.example.com/knowpay?source=pay")
    targets.check_url("https://93.184.216.34/hook")


def test_private_targets_are_allowed_only_outside_production_unless_configured() -> None:
    assert targets.private_targets_allowed("development", None) is True
    assert targets.private_targets_allowed("production", None) is False
    assert targets.private_targets_allowed("production", True) is True
    assert targets.private_targets_allowed("development", False) is False


def test_the_api_refuses_a_private_url_when_private_targets_are_off(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    strict = settings.model_copy(update={"webhook_private_targets": False})
    with TestClient(create_app(strict, clock=clock, database=database)) as client:
        app = Builders(client, database, clock).app()
        refused = client.post(
            "/v1/webhook-endpoints",
            json={"url": "http://169.254.169.254/latest", "events": ["order.paid"]},
            headers=app.headers,
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "webhook_url_not_allowed"
        assert client.get("/v1/webhook-endpoints", headers=app.headers).json()["data"] == []
        accepted = client.post(
            "/v1/webhook-endpoints",
            json={"url": "https://hooks.example.com/knowpay", "events": ["order.paid"]},
            headers=app.headers,
        )
        assert accepted.status_code == 201, accepted.text


def test_a_delivery_to_a_host_that_resolves_inside_the_network_is_not_sent(
    database: Database, clock: FrozenClock
) -> None:
    """The name was public when the endpoint was made; DNS may say otherwise later."""
    deliverer = WebhookDeliverer(
        database, clock, SecretBox("k" * 40), DeliveryPolicy(public_targets_only=True)
    )
    job = DeliveryJob("whd_1", "lease", "https://localhost:9/hook", ["s"], "evt_1", "x", b"{}")
    result = deliverer.send(job)
    assert result.status_code is None
    assert result.error is not None
    assert "does not resolve to public addresses" in result.error
    assert targets.pin("https://name-that-does-not-exist.invalid/") is None


def test_a_send_goes_to_the_address_that_was_checked(
    database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolved once: a name that resolves inside the network a moment later (DNS rebinding)
    is not looked up again by the HTTP client. Host and TLS name stay the app's host."""
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_args, **_kwargs: public)
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    deliverer = WebhookDeliverer(
        database,
        clock,
        SecretBox("k" * 40),
        DeliveryPolicy(public_targets_only=True),
        client=httpx.Client(transport=httpx.MockTransport(receiver)),
    )
    url = "https://hooks.example.com:8443/knowpay?x=1"
    job = DeliveryJob("whd_1", "lease", url, ["s"], "evt_1", "x", b"{}")
    assert deliverer.send(job).status_code == 200
    [request] = seen
    assert str(request.url) == "https://93.184.216.34:8443/knowpay?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_an_answer_carrying_a_nul_is_kept_in_a_form_every_database_can_store(
    database: Database, clock: FrozenClock
) -> None:
    """PostgreSQL refuses a NUL in text: the attempt could never be logged, and the delivery
    would be sent again and again."""
    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=b"ok\x00done"))
    deliverer = WebhookDeliverer(
        database, clock, SecretBox("k" * 40), client=httpx.Client(transport=answer)
    )
    job = DeliveryJob("whd_1", "lease", "https://hooks.example.com/", ["s"], "evt_1", "x", b"{}")
    result = deliverer.send(job)
    assert (result.status_code, result.response_excerpt) == (200, "ok\\x00done")
