"""A burst of API-key calls larger than the worker threads and the connection pool is served.

The key is looked up in a worker thread with the request's session; if its connection
stayed checked out while the endpoint waited for a thread, the threads (all waiting for a
connection) and the requests (all holding one) would wait for each other until the pool
timeout."""

from __future__ import annotations

import time

import anyio
import anyio.to_thread
import httpx
from fastapi import FastAPI

from knowpay.app import create_app
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from tests.builders import Builders, Shop

BURST = 12


def _tight_app(settings: Settings, clock: FrozenClock) -> tuple[FastAPI, Database]:
    """One pooled connection, given up for an error after 5 s of waiting."""
    tight = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 5.0}
    )
    database = Database(tight)
    return create_app(tight, clock=clock, database=database, run_worker=False), database


def test_a_burst_of_reads_wider_than_the_threads_and_the_pool_is_served(
    build: Builders, settings: Settings, clock: FrozenClock
) -> None:
    shop = Shop(build)
    order = shop.order()
    app, database = _tight_app(settings, clock)
    statuses: list[int] = []

    async def burst() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def read() -> None:
                response = await client.get(f"/v1/orders/{order['id']}", headers=shop.app.headers)
                statuses.append(response.status_code)

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tasks:
                    for _ in range(BURST):
                        tasks.start_soon(read)

    began = time.monotonic()
    try:
        anyio.run(burst)
    finally:
        database.dispose()

    assert statuses == [200] * BURST
    assert time.monotonic() - began < 5.0  # served, not released by the pool timeout
