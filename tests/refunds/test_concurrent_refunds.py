"""Refund requests racing across server processes never refund more than was captured."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import httpx

from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from tests import books
from tests.builders import Builders, Shop
from tests.serving import running_server


def test_concurrent_partial_refunds_stay_within_the_captured_amount(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    count = 20 if database.dialect == "postgresql" else 8
    shop = Shop(build)
    order = shop.order()
    shop.confirm(shop.pay(order))
    barrier = Barrier(count)

    def ask(base_url: str) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
            barrier.wait()
            return client.post(
                "/v1/refunds",
                json={"order_id": order["id"], "amount": 1500, "reason": "other"},
                headers=shop.app.headers,
            )

    with (
        running_server(settings, workers=2, log=tmp_path / "server.log") as base_url,
        ThreadPoolExecutor(max_workers=count) as pool,
    ):
        responses = list(pool.map(lambda _: ask(base_url), range(count)))

    accepted = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(accepted) == 9900 // 1500  # 6 × 15.00 fit in 99.00, the 7th does not
    assert all(
        r.status_code == 422 and r.json()["code"] == "refund_exceeds_captured" for r in refused
    )
    assert sum(r.json()["amount"] for r in accepted) <= 9900
    assert books.violations(database) == []
