"""Crashes on the embedded default: `knowpay serve` on SQLite, with its worker loops inside
it (what `make run` starts), is SIGKILLed twice in the middle of paid flows and started
again, while the gateway simulators (`knowpay sandbox`, their own process) keep sending
their notifications. Afterwards the money, the events and the idempotency keys add up.

The PostgreSQL deployment has the full chaos test (test_chaos.py); this one needs no
server and runs wherever the suite does."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from knowpay.bench.flows import make_catalog
from knowpay.bench.stack import (
    Process,
    answers_ok,
    free_port,
    read_simulator_keys,
    run_cli,
    simulated_gateways_env,
    wait_until,
)
from tests.chaos.controller import (
    CRASH_RUN_ENV,
    FlowLog,
    paid_at_simulator,
    patient_platform,
    run_flows,
    simulator_client,
    wait_for,
)

FLOWS = 160
CONCURRENCY = 16
KILL_AFTER = (0.25, 0.55)
"""Fractions of the flows finished when the server is killed."""
CHANNELS = ("alipay_qr", "wechat_native")
SETTLE_S = 90.0


@dataclass
class Deployment:
    sandbox_url: str
    api_url: str
    database_url: str
    env: dict[str, str]
    sandbox: Process
    server: Process
    kills: list[float] = field(default_factory=list)

    def cli(self, *args: str) -> Any:
        return run_cli(self.env, *args)


def _deploy(tmp_path: Path) -> Deployment:
    sandbox_url = f"http://127.0.0.1:{free_port()}"
    api_port = free_port()
    python = [sys.executable, "-m", "knowpay.cli.main"]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWPAY_")}
    sandbox = Process(
        "sandbox",
        [*python, "sandbox", "--port", sandbox_url.rsplit(":", 1)[1], "--time-scale", "0.001"],
        base_env,
        tmp_path / "sandbox.log",
    )
    sandbox.start()
    try:
        wait_until(answers_ok(sandbox_url + "/healthz"), timeout_s=60, what="sandbox ready")
        keys = read_simulator_keys(sandbox_url)
    except BaseException:
        sandbox.stop()
        raise
    database_url = f"sqlite:///{tmp_path / 'knowpay.db'}"
    env = {
        **base_env,
        "KNOWPAY_DATABASE_URL": database_url,
        "KNOWPAY_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "KNOWPAY_SECRET_KEY": "embedded-crash-" + "k" * 40,
        **simulated_gateways_env(keys, sandbox_url),
        **CRASH_RUN_ENV,
    }
    server = Process(
        "serve", [*python, "serve", "--port", str(api_port)], env, tmp_path / "serve.log"
    )
    return Deployment(
        sandbox_url, f"http://127.0.0.1:{api_port}", database_url, env, sandbox, server
    )


async def _flows_with_kills(deployment: Deployment, api_key: str) -> FlowLog:
    catalog = await make_catalog(deployment.api_url, api_key, buyers=16, products=8)
    platform = patient_platform(
        deployment.api_url, deployment.sandbox_url, catalog, concurrency=CONCURRENCY
    )
    log = FlowLog(FLOWS)

    async def killer() -> None:
        began = time.monotonic()
        for fraction in KILL_AFTER:
            while log.finished < FLOWS * fraction:
                await asyncio.sleep(0.05)
            deployment.server.kill()  # SIGKILL: no shutdown, the worker loops die with it
            deployment.kills.append(round(time.monotonic() - began, 1))
            await asyncio.sleep(0.3)
            deployment.server.start()

    try:
        await asyncio.gather(
            run_flows(platform, log, CHANNELS, concurrency=CONCURRENCY, slot_s=20.0), killer()
        )
    finally:
        await platform.aclose()
    return log


async def _paid_at_simulators(sandbox_url: str, payments: list[tuple[str, str]]) -> set[str]:
    async with simulator_client(sandbox_url) as sim:
        return await paid_at_simulator(sim, payments)


def test_sigkilled_embedded_server_on_sqlite_loses_nothing(tmp_path: Path) -> None:
    deployment = _deploy(tmp_path)
    engine = create_engine(deployment.database_url)
    try:
        assert deployment.cli("migrate")["migrated"] is True
        api_key = str(deployment.cli("apps", "create", "--name", "embedded crash")["api_key"])
        deployment.server.start()
        wait_until(answers_ok(deployment.api_url + "/readyz"), timeout_s=60, what="serve ready")
        log = asyncio.run(_flows_with_kills(deployment, api_key))

        def rows(sql: str) -> list[tuple[object, ...]]:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql))]

        client_paid = {result.payment_id for result in log.results}

        def settled() -> bool:
            succeeded = {r[0] for r in rows("SELECT id FROM payments WHERE status = 'succeeded'")}
            undispatched = rows("SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL")
            return client_paid <= succeeded and undispatched[0][0] == 0

        assert wait_for(settled, timeout_s=SETTLE_S), "payments or events never settled"
        payments = rows("SELECT id, channel, status FROM payments")
        sim_paid = asyncio.run(
            _paid_at_simulators(deployment.sandbox_url, [(str(p[0]), str(p[1])) for p in payments])
        )
        captures = rows(
            "SELECT payment_id, kind FROM journal_entries"
            " WHERE kind IN ('payment_captured', 'duplicate_captured')"
        )
        paid_orders = rows("SELECT paid_payment_id FROM orders WHERE status = 'paid'")
        orders = rows("SELECT count(*) FROM orders")[0][0]
        in_flight = rows("SELECT count(*) FROM idempotency_keys WHERE state = 'in_progress'")
        ledger = deployment.cli("ledger", "check")
    finally:
        engine.dispose()
        deployment.server.stop()
        deployment.sandbox.stop()
    server_log = (tmp_path / "serve.log").read_text(errors="replace")

    assert not log.errors, log.errors[:5]
    assert len(log.results) == FLOWS
    assert len(deployment.kills) == len(KILL_AFTER)
    assert server_log.count("=== start") == 1 + len(KILL_AFTER)
    # knowpay and the simulators agree on every payment knowpay ever opened, both ways, and
    # each was captured exactly once.
    succeeded = {p[0] for p in payments if p[2] == "succeeded"}
    assert client_paid <= sim_paid
    assert succeeded == sim_paid
    assert sorted(str(c[0]) for c in captures) == sorted(sim_paid)
    assert {c[1] for c in captures} == {"payment_captured"}
    assert sorted(str(o[0]) for o in paid_orders) == sorted(sim_paid)
    # One order per flow: retries through the kills replayed the first answer.
    assert orders == FLOWS
    assert in_flight == [(0,)]
    assert ledger["ok"] is True, ledger
    assert not re.findall(r'^.*" 500 .*$', server_log, flags=re.MULTILINE)
