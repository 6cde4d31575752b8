"""Two processes, one daily limit: 20 payments racing over real HTTP against
`knowpay serve --workers 2` never pass the limit together."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import httpx
import pytest
from sqlalchemy import select, text

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.limits import service as limits
from knowpay.limits.models import LimitUsage, SpendingLimit
from tests import books
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


@pytest.mark.postgres_only
def test_giving_an_order_back_locks_usage_rows_in_the_order_a_payment_does(
    build: Builders, database: Database, clock: FrozenClock
) -> None:
    """Found in an audit: a payment locks usage rows in limit order, giving an order back
    locked them in usage-row order. A buyer's day row of the first limit is newer than the
    app's row of the second when another buyer paid first, so a payment of the buyer's and the
    close of their other order could deadlock (PostgreSQL: deadlock detected, 503). Here a
    transaction holds the buyer's row, as a payment's does, while the other order is given
    back; it then takes the app's row."""
    if database.dialect != "postgresql":
        pytest.skip("row locks held across connections: PostgreSQL")
    shop = Shop(build)
    finance = build.staff(Role.FINANCE)
    bodies = [
        {"scope": "buyer", "period": "day", "amount": 10**9, "currency": "CNY"},
        {"scope": "app", "period": "day", "amount": 10**9, "currency": "CNY"},
    ]
    for body in bodies:  # the buyer limit's id sorts first
        created = build.client.post("/v1/admin/limits", json=body, headers=finance.headers)
        assert created.status_code == 201, created.text
        time.sleep(0.005)
    other = build.buyer(shop.app)
    first = build.client.post(
        "/v1/orders",
        json={"user_id": other.id, "items": [{"product_id": shop.course["id"]}], "currency": "CNY"},
        headers=shop.app.headers,
    ).json()
    shop.pay(first)  # the app's usage row is made here, before our buyer's
    time.sleep(0.005)
    given_back = shop.order()
    shop.pay(given_back)
    with database.session_scope(read_only=True) as session:
        rows = session.execute(
            select(LimitUsage.id, SpendingLimit.scope)
            .join(SpendingLimit, SpendingLimit.id == LimitUsage.limit_id)
            .where(LimitUsage.subject.in_([shop.buyer.id, shop.app.id]))
        ).all()
    usage = {scope: usage_id for usage_id, scope in rows}
    assert usage["app"] < usage["buyer"]  # usage-row order is not limit order
    lock = text("SELECT id FROM limit_usage WHERE id = :id FOR UPDATE")

    def give_back() -> None:
        with database.session_scope() as session:
            limits.release_order(session, given_back["id"], clock.now())

    with ThreadPoolExecutor(max_workers=1) as pool, database.session_scope() as paying:
        paying.execute(lock, {"id": usage["buyer"]})
        releasing = pool.submit(give_back)
        books.wait_for_a_row_lock_wait(database, "the release")
        paying.execute(lock, {"id": usage["app"]})
    releasing.result(timeout=30)

    with database.session_scope(read_only=True) as session:
        rows_now = select(LimitUsage.used_minor).where(LimitUsage.id.in_(usage.values()))
        # the buyer's row is back to 0; the app's keeps the other buyer's order
        assert sorted(session.scalars(rows_now)) == [0, 9900]
