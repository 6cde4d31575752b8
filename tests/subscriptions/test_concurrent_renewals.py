"""Several worker processes renewing at once charge each subscription once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from fastapi import FastAPI

from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.subscriptions.tasks import RenewalContext, renew_subscriptions
from tests import books
from tests.builders import Builders
from tests.subscriptions.test_subscriptions import PRICE, MemberShop

PROCESSES = 4


def test_workers_racing_renew_each_subscription_once(
    build: Builders, app: FastAPI, database: Database, settings: Settings
) -> None:
    shops = [MemberShop(build, app) for _ in range(3)]
    subscriptions = [shop.subscribed() for shop in shops]
    shops[0].at(max(s["next_attempt_at"] for s in subscriptions))
    # Each "process" has its own engine and connections, as `knowpay worker` would.
    databases = [Database(settings) for _ in range(PROCESSES)]
    barrier = Barrier(PROCESSES)

    def worker(process: Database) -> dict[str, int]:
        context = RenewalContext(
            database=process,
            clock=build.clock,
            subscriptions=app.state.subscriptions_context,
            batch=1 if process is databases[0] else 100,
        )
        barrier.wait()
        return renew_subscriptions(context)

    try:
        with ThreadPoolExecutor(max_workers=PROCESSES) as pool:
            outcomes = list(pool.map(worker, databases))
    finally:
        for process in databases:
            process.dispose()
    total = sum((Counter(o) for o in outcomes), Counter())
    leftover = renew_subscriptions(shops[0].renewals)  # what a worker skipped, if any
    assert total["renewed"] + leftover.get("renewed", 0) == len(shops), (outcomes, leftover)
    for shop, subscription in zip(shops, subscriptions, strict=True):
        assert shop.balance() == 10_000 - 2 * PRICE
        assert shop.subscription(subscription["id"])["renewals"] == 1
    assert len(books.entries(database, "wallet_spent")) == 2 * len(shops)
    assert books.violations(database) == []
