"""`GET /metrics`: HTTP requests by route template, the background work's backlog, and one
set of figures whichever of `serve --workers N`'s processes a scrape reaches."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from knowpay.kit.config import Settings
from knowpay.worker.backlog import BacklogCollector
from tests.builders import Builders, Shop
from tests.serving import running_server


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition text, or None when there is none."""
    for line in text.splitlines():
        sample = re.fullmatch(re.escape(name) + r"\{(.*)\} (\S+)", line)
        if sample is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(sample.group(2))
    return None


def test_requests_are_counted_by_route_template_never_by_raw_path(
    client: TestClient, build: Builders
) -> None:
    shop = Shop(build)
    before = client.get("/metrics").text
    shop.client.get("/v1/products", headers=shop.app.headers)
    assert client.get("/v1/orders/ord_0000000000000000000000000z", headers=shop.app.headers)
    client.get("/no/such/path/ord_secret123")
    after = client.get("/metrics").text

    def grew(**labels: str) -> float:
        name = "knowpay_http_requests_total"
        return (_sample(after, name, **labels) or 0) - (_sample(before, name, **labels) or 0)

    assert grew(method="GET", route="/v1/products", status="200") == 1
    assert grew(method="GET", route="/v1/orders/{order_id}", status="404") == 1
    assert grew(method="GET", route="unmatched", status="404") == 1

    assert "ord_0000000000000000000000000z" not in after
    assert "ord_secret123" not in after
    assert _sample(after, "knowpay_http_request_seconds_count", route="/v1/products")


def test_the_backlog_of_background_work_is_read_from_the_database(
    client: TestClient, build: Builders
) -> None:
    shop = Shop(build)
    shop.pay(shop.order())  # pending at the gateway
    shop.confirm(shop.pay(shop.order()))  # paid: its events wait for the dispatcher
    text = client.get("/metrics").text
    assert _sample(text, "knowpay_backlog", kind="payments") == 1
    # order.paid, payment.succeeded, entitlement.granted: no worker runs here
    assert _sample(text, "knowpay_backlog", kind="outbox_events") == 3
    assert _sample(text, "knowpay_backlog", kind="webhook_deliveries") == 0
    assert _sample(text, "knowpay_backlog", kind="refunds") == 0


def test_every_server_process_adds_to_the_same_figures(settings: Settings) -> None:
    """Found by an operations audit: with `--workers 2` a counter read 1 2 1 1 2 … from scrape
    to scrape, whichever process answered: Prometheus would see it reset again and again."""
    with running_server(settings, workers=2) as base_url, httpx.Client(base_url=base_url) as http:
        for _ in range(20):
            assert http.get("/healthz").status_code == 200
        seen = set()
        for _ in range(10):
            # A new connection each time, so that both processes get to answer.
            text = httpx.get(f"{base_url}/metrics").text
            seen.add(_sample(text, "knowpay_http_requests_total", route="/healthz", status="200"))
    assert seen == {20.0}, seen


def test_a_route_of_a_mounted_app_is_named_under_its_mount(app: FastAPI) -> None:
    """Found by a review: the demo's simulators (mounted at /sandbox) showed as
    `route="/v1/{path:path}"`, as if they were knowpay's own /v1 routes."""
    simulator = FastAPI()

    @simulator.get("/v1/{path:path}")
    def anything(path: str) -> dict[str, str]:
        return {"path": path}

    app.mount("/sandbox-like", simulator)
    with TestClient(app) as client:
        assert client.get("/sandbox-like/v1/charges/ch_1").status_code == 200
        text = client.get("/metrics").text
    assert _sample(text, "knowpay_http_requests_total", route="/sandbox-like/v1/{path:path}")
    assert _sample(text, "knowpay_http_requests_total", route="/v1/{path:path}") is None


def test_metrics_still_answer_when_the_backlog_cannot_be_read(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the database is out of reach the scrape is most needed: it answers with the
    processes' own figures and without the backlog, not a 503."""

    def unreachable(_self: object) -> dict[str, int | None]:
        raise OperationalError("SELECT count(*)", {}, Exception("connection refused"))

    monkeypatch.setattr(BacklogCollector, "_counts", unreachable)
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert "knowpay_http_requests_total" in answer.text
    assert "knowpay_backlog" not in answer.text
