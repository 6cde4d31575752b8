"""Two processes, one daily limit: 20 payments racing over real HTTP against
`knowpay serve --workers 2` never pass the limit together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import httpx
from sqlalchemy import select

from knowpay.auth.principals import Role
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.limits.models import LimitUsage
from tests.builders import Builders, Shop
from tests.serving import running_server

RACERS = 20
LIMIT = 100_000  # ¥1,000 a day
PRICE = 9_900  # ten fit, the eleventh does not


def test_concurrent_payments_near_a_daily_limit_stay_within_it(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    shop = Shop(build)
    finance = build.staff(Role.FINANCE)
    created = build.client.post(
        "/v1/admin/limits",
        json={"scope": "buyer", "period": "day", "amount": LIMIT, "currency": "CNY"},
        headers=finance.headers,
    )
    assert created.status_code == 201, created.text
    with running_server(settings, workers=2, log=tmp_path / "server.log") as base_url:
        # Created by the server, on its clock (the builders' clock is frozen in the past).
        with httpx.Client(base_url=base_url, timeout=60) as client:
            orders = [
                client.post(
                    "/v1/orders",
                    json={
                        "user_id": shop.buyer.id,
                        "items": [{"product_id": shop.course["id"]}],
                        "currency": "CNY",
                    },
                    headers=shop.app.headers,
                ).json()
                for _ in range(RACERS)
            ]
        barrier = Barrier(RACERS)

        def pay(order_id: str) -> httpx.Response:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                barrier.wait()
                return client.post(
                    f"/v1/orders/{order_id}/payments",
                    json={"channel": "test"},
                    headers=shop.app.headers,
                )

        with ThreadPoolExecutor(max_workers=RACERS) as pool:
            answers = list(pool.map(pay, [o["id"] for o in orders]))

    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 422}, [a.text for a in answers if a.status_code not in (201, 422)]
    accepted = statuses.count(201)
    assert accepted == LIMIT // PRICE  # every one that fits, and not one more
    refused = [a.json() for a in answers if a.status_code == 422]
    assert {p["code"] for p in refused} == {"limit_exceeded"}
    assert {p["remaining"] for p in refused} == {LIMIT - accepted * PRICE}
    with database.session_scope(read_only=True) as session:
        [usage] = session.scalars(select(LimitUsage)).all()
        assert usage.used_minor == accepted * PRICE <= LIMIT
