"""Finance paying one statement twice at once, in two server processes, pays it once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from threading import Barrier

import httpx

from knowpay.auth.principals import Role
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.ledger.accounts import CREATOR_PAYOUTS
from knowpay.settlements.models import Settlement
from tests import books
from tests.builders import Builders
from tests.serving import running_server


def test_concurrent_payouts_of_one_statement_pay_it_once(
    build: Builders, database: Database, settings: Settings, tmp_path: Path
) -> None:
    count = 8
    app = build.app()
    creator = build.buyer(app, role="creator")
    with database.session_scope() as session:  # as `settle` writes one
        session.add(
            Settlement(
                id="stl_0000000000c000000000000000",
                creator_id=creator.id,
                app_id=app.id,
                currency="CNY",
                period_start=date(2025, 12, 1),
                period_end=date(2026, 1, 1),
                earned_minor=7000,
                reversed_minor=0,
                amount_minor=7000,
                status="open",
                created_at=build.clock.now(),
            )
        )
    barrier = Barrier(count)

    def pay(base_url: str) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
            token = client.post(
                "/v1/auth/token", json={"username": finance.email, "password": finance.password}
            ).json()["access_token"]
            barrier.wait()
            return client.post(
                "/v1/admin/settlements/stl_0000000000c000000000000000/pay",
                json={"reference": "T-1"},
                headers={"Authorization": f"Bearer {token}"},
            )

    finance = build.staff(Role.FINANCE)
    with (
        running_server(settings, workers=2, log=tmp_path / "server.log") as base_url,
        ThreadPoolExecutor(max_workers=count) as pool,
    ):
        responses = list(pool.map(lambda _: pay(base_url), range(count)))

    assert sorted(r.status_code for r in responses) == [200] + [409] * (count - 1), [
        r.text for r in responses
    ]
    assert len(books.entries(database, kind="creator_payout")) == 1
    assert books.account_balance(database, CREATOR_PAYOUTS) == -7000
