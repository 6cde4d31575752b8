"""`GET /metrics` behind `KNOWPAY_METRICS_TOKEN`: with the token set, only a scraper that
bears it reads the process's figures; without it, the endpoint is open (a network keeps it in)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from knowpay.app import create_app
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database

TOKEN = "scrape-me-0123456789"


@pytest.fixture
def guarded(settings: Settings, clock: FrozenClock, database: Database) -> TestClient:
    with_token = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    app = create_app(with_token, clock=clock, database=database, run_worker=False)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x"]
)
def test_metrics_refuse_a_scraper_without_the_token(
    guarded: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    answer = guarded.get("/metrics", headers=headers)

    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "gateway" not in answer.text


def test_metrics_answer_the_scraper_bearing_the_token(guarded: TestClient) -> None:
    answer = guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")


def test_metrics_are_open_when_no_token_is_set(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 200
