"""Several `knowpay worker` processes on one database share the outbox and the webhook
deliveries: nothing twice to a healthy receiver, nothing lost when one is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.outbox import emit
from knowpay.webhooks.models import WebhookDelivery
from tests.builders import Builders, Caller
from tests.serving import server_environment
from tests.webhooks.receiver import Receiver, receiver

STREAMS = 50


def _event_count(database: Database) -> int:
    return 500 if database.dialect == "postgresql" else 120


def _emit_events(database: Database, app: Caller, count: int) -> list[str]:
    with database.session_scope() as session:
        now = datetime.now(UTC)
        return [
            emit(
                session,
                event_type="order.paid",
                data={"n": n},
                stream_key=f"ord_{n % STREAMS}",
                app_id=app.id,
                now=now,
            )
            for n in range(count)
        ]


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "knowpay.cli.main", "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def _workers(
    settings: Settings, count: int, logs: Path, *, webhook_timeout_s: float = 2
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` worker processes. The webhook timeout also sets how long a lease lasts
    (2 × timeout + 5 s): short, so that a killed worker's deliveries come back soon."""
    env = server_environment(settings) | {
        "KNOWPAY_WORKER__IDLE_WAIT_S": "0.05",
        "KNOWPAY_WORKER__JOBS_INTERVAL_S": "3600",
        "KNOWPAY_WORKER__WEBHOOK_TIMEOUT_S": str(webhook_timeout_s),
    }
    processes = [_spawn(env, logs / f"worker{i}.log") for i in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_ids(hooks: Receiver, wanted: set[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if wanted <= {e["id"] for e in hooks.events()}:
            return
        time.sleep(0.1)
    missing = wanted - {e["id"] for e in hooks.events()}
    raise AssertionError(f"{len(missing)} events never arrived")


def _endpoint(client: TestClient, app: Caller, url: str) -> None:
    response = client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=app.headers
    )
    assert response.status_code == 201


def test_two_workers_deliver_every_event_exactly_once_in_order(
    build: Builders, client: TestClient, database: Database, settings: Settings, tmp_path: Path
) -> None:
    app = build.app()
    with receiver() as hooks:
        _endpoint(client, app, hooks.url)
        ids = _emit_events(database, app, _event_count(database))
        # No worker dies here: a lease long enough that a process starved of CPU by the
        # rest of the suite (seen once in `make test`) is not taken for a dead one.
        with _workers(settings, 2, tmp_path, webhook_timeout_s=10):
            _wait_for_ids(hooks, set(ids), timeout_s=120)
            time.sleep(1.0)  # room for a duplicate to show up, if there were one
        events = hooks.events()
    counts = Counter(e["id"] for e in events)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, "a healthy receiver got an event twice"
    order_of = {event_id: index for index, event_id in enumerate(ids)}
    by_stream: dict[int, list[int]] = defaultdict(list)
    for event in events:
        by_stream[event["data"]["object"]["n"] % STREAMS].append(order_of[event["id"]])
    assert all(sequence == sorted(sequence) for sequence in by_stream.values())


def test_a_worker_killed_mid_run_loses_nothing(
    build: Builders, client: TestClient, database: Database, settings: Settings, tmp_path: Path
) -> None:
    app = build.app()
    with receiver(lambda _: (200, 0.01)) as hooks:
        _endpoint(client, app, hooks.url)
        ids = _emit_events(database, app, _event_count(database))
        with _workers(settings, 2, tmp_path) as processes:
            deadline = time.monotonic() + 60
            while len(hooks.events()) < len(ids) // 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(processes[0].pid, signal.SIGKILL)
            processes[0].wait()
            _wait_for_ids(hooks, set(ids), timeout_s=120)
        events = hooks.events()
    counts = Counter(e["id"] for e in events)
    assert set(counts) == set(ids)
    # At least once: only what the killed worker had in flight may arrive twice.
    assert sum(c - 1 for c in counts.values()) <= 16
    with database.session_scope(read_only=True) as session:
        statuses = dict(
            session.execute(
                select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
            ).all()
        )
    assert statuses == {"succeeded": len(ids)}
