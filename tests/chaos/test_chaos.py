"""Chaos: paid flows through the whole deployment (API, worker, gateway simulators, each its
own process, on PostgreSQL) while the API and the worker are SIGKILLed and restarted at
random moments and the simulators fail for a third of the run. Afterwards money, events and
idempotency keys must all add up.

Size: KNOWPAY_CHAOS_FLOWS (default 500) and KNOWPAY_CHAOS_KILLS (default 3); the full run is
KNOWPAY_CHAOS_FLOWS=2000 KNOWPAY_CHAOS_KILLS=10. The figures go to var/chaos-summary.json
and are printed as one `chaos-summary {...}` line (see them with -s)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from knowpay.bench.flows import make_catalog
from knowpay.bench.stack import Stack, StackOptions
from tests.chaos.controller import (
    CRASH_RUN_ENV,
    FaultInjector,
    FlowLog,
    Killer,
    WebhookReceiver,
    notification_counts,
    paid_at_simulator,
    patient_platform,
    run_fault_window,
    run_flows,
    simulator_client,
    wait_for,
    webhook_receiver,
)

pytestmark = pytest.mark.postgres_only

PG_URL_ENV = "KNOWPAY_TEST_DATABASE_URL"

FLOWS = int(os.environ.get("KNOWPAY_CHAOS_FLOWS", "500"))
KILLS = int(os.environ.get("KNOWPAY_CHAOS_KILLS", "3"))
CONCURRENCY = 32
SLOT_S = 20.0
"""Longer than the API takes to come back, shorter than a dead request's key stays locked."""
CHANNELS = ("alipay_qr", "wechat_native")
GATEWAY_TIMEOUT_S = 2.0
TIME_SCALE = 0.001
"""The simulators retry notifications on their real schedules, a thousand times faster:
Alipay's 8 tries over 25 hours take 90 s, WeChat Pay's 16 over 2 days 3 min."""
SETTLE_S = 120 + FLOWS / 20
VAR = Path(__file__).resolve().parents[2] / "var"
SUMMARY = VAR / "chaos-summary.json"
LOGS = VAR / "chaos" / "logs"
"""The processes' logs of the last run (emptied when a run starts)."""

CHAOS_ENV = {
    **CRASH_RUN_ENV,
    # A killed worker's webhook lease (2 × timeout + 5 s) expires in 9 s, not 25 s.
    "KNOWPAY_WORKER__WEBHOOK_TIMEOUT_S": "2",
    # The breaker still opens after the default 5 failures, but lets a trial call through
    # after 1 s, so that a fault window does not pause a channel for 30 s.
    "KNOWPAY_CHANNELS__BREAKER_RESET_TIMEOUT_S": "1",
    # Short gateway timeouts, so that the simulators' stalls are timeouts for knowpay.
    "KNOWPAY_ALIPAY__TIMEOUT_S": str(GATEWAY_TIMEOUT_S),
    "KNOWPAY_WECHATPAY__TIMEOUT_S": str(GATEWAY_TIMEOUT_S),
}


@pytest.fixture
def server_url() -> str:
    """The test PostgreSQL server (the test database is the admin connection); skip without."""
    url = os.environ.get(PG_URL_ENV, "")
    if not url.startswith(("postgresql://", "postgres://")):
        pytest.skip(f"the chaos test needs PostgreSQL ({PG_URL_ENV})")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {str(exc).splitlines()[0]}")
    return url.replace("postgres://", "postgresql://", 1)


class Laps:
    """How long each phase of the test took."""

    def __init__(self) -> None:
        self._last = self.began = time.monotonic()
        self.seconds: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.seconds[phase] = round(now - self._last, 1)
        self._last = now

    @property
    def total_s(self) -> float:
        return round(time.monotonic() - self.began, 1)


@dataclass
class Run:
    """What happened during the flows."""

    log: FlowLog
    killer: Killer
    injector: FaultInjector
    laps: Laps
    retries: int = 0
    settled: bool = False
    missing_after_flows: tuple[int, int] = (0, 0)
    """Payments the flows paid not yet succeeded, paid orders not yet announced."""


# -- driving --------------------------------------------------------------------------------


async def _drive(
    stack: Stack, api_key: str, receiver: WebhookReceiver, seed: int, laps: Laps
) -> Run:
    catalog = await make_catalog(stack.api_url, api_key, buyers=32, products=16)
    await _subscribe(stack.api_url, api_key, receiver)
    laps.lap("catalog")
    platform = patient_platform(stack.api_url, stack.sandbox_url, catalog, concurrency=CONCURRENCY)
    log = FlowLog(FLOWS)
    async with simulator_client(stack.sandbox_url) as sim:
        run = Run(
            log,
            Killer(stack, KILLS, log, random.Random(seed)),
            FaultInjector(
                sim,
                FLOWS,
                alipay_timeout_s=GATEWAY_TIMEOUT_S + 1,
                wechat_api_failed=lambda: _wechat_api_errors(stack) > 0,
            ),
            laps,
        )
        try:
            await asyncio.gather(
                run_flows(platform, log, CHANNELS, concurrency=CONCURRENCY, slot_s=SLOT_S),
                run.killer.run(),
                run_fault_window(run.injector, log),
            )
        finally:
            await platform.aclose()
        laps.lap("flows")
        run.retries = platform.retries
    return run


async def _subscribe(api_url: str, api_key: str, receiver: WebhookReceiver) -> None:
    async with httpx.AsyncClient(base_url=api_url, trust_env=False) as client:
        response = await client.post(
            "/v1/webhook-endpoints",
            json={"url": receiver.url, "events": ["order.paid"]},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert response.status_code == 201, response.text
    receiver.secret = response.json()["secret"]


def _settle(stack: Stack, run: Run, receiver: WebhookReceiver) -> None:
    """Let the compensation jobs and webhook retries finish: every payment the flows paid is
    succeeded in knowpay and every paid order's `order.paid` has arrived (bounded). Keeps
    what was still missing when the flows ended, for the summary."""
    client_paid = {result.payment_id for result in run.log.results}

    def missing() -> tuple[int, int]:
        succeeded = _ids(stack, "SELECT id FROM payments WHERE status = 'succeeded'")
        paid_orders = _ids(stack, "SELECT id FROM orders WHERE status = 'paid'")
        return len(client_paid - succeeded), len(paid_orders - receiver.orders())

    run.missing_after_flows = missing()
    run.settled = wait_for(lambda: missing() == (0, 0), timeout_s=SETTLE_S)
    run.laps.lap("settle")


def _ids(stack: Stack, sql: str) -> set[str]:
    return {row[0] for row in stack.rows(sql)}


# -- observing ------------------------------------------------------------------------------


@dataclass
class Observed:
    """Knowpay's records and the simulators' after the run."""

    payments: dict[str, tuple[str, str, str | None]]
    """Payment id → (channel, status, failure message)."""
    sim_paid: set[str]
    captures: dict[str, list[str]]
    """Payment id → the kinds of its capture journal entries."""
    paid_orders: dict[str, str]
    """Order id → the payment that paid it."""
    orders: int
    in_flight_keys: list[str]
    ledger: dict[str, Any]
    order_paid_events: int
    server_errors: list[str]
    """Knowpay's 500 answers, from the API's access log."""
    wechat_api_errors: int
    """WeChat Pay's injected 500s, from the simulators' access log."""
    notifications: dict[str, dict[str, int]]


async def _simulators(
    stack: Stack, payments: list[tuple[str, str]]
) -> tuple[set[str], dict[str, dict[str, int]]]:
    async with simulator_client(stack.sandbox_url) as sim:
        paid = await paid_at_simulator(sim, payments)
        counts = {g: asdict(await notification_counts(sim, g)) for g in ("alipay", "wechatpay")}
    return paid, counts


def _observe(stack: Stack) -> Observed:
    payments = {
        pid: (channel, status, message)
        for pid, channel, status, message in stack.rows(
            "SELECT id, channel, status, failure_message FROM payments"
        )
    }
    sim_paid, notifications = asyncio.run(
        _simulators(stack, [(pid, row[0]) for pid, row in payments.items()])
    )
    captures: dict[str, list[str]] = {}
    for payment_id, kind in stack.rows(
        "SELECT payment_id, kind FROM journal_entries"
        " WHERE kind IN ('payment_captured', 'duplicate_captured')"
    ):
        captures.setdefault(payment_id, []).append(kind)
    api_log = (stack.options.log_dir / "api.log").read_text(errors="replace")
    return Observed(
        payments=payments,
        sim_paid=sim_paid,
        captures=captures,
        paid_orders=dict(
            stack.rows("SELECT id, paid_payment_id FROM orders WHERE status = 'paid'")
        ),
        orders=int(stack.scalar("SELECT count(*) FROM orders")),
        in_flight_keys=[
            f"{scope}/{key}"
            for scope, key in stack.rows(
                "SELECT scope, key FROM idempotency_keys WHERE state = 'in_progress'"
            )
        ],
        ledger=stack.cli("ledger", "check"),
        order_paid_events=int(
            stack.scalar("SELECT count(*) FROM outbox_events WHERE type = 'order.paid'")
        ),
        server_errors=re.findall(r'^.*" 500 .*$', api_log, flags=re.MULTILINE),
        wechat_api_errors=_wechat_api_errors(stack),
        notifications=notifications,
    )


def _wechat_api_errors(stack: Stack) -> int:
    """WeChat Pay API calls the simulator answered with its injected 500 (its access log)."""
    log = (stack.options.log_dir / "sandbox.log").read_text(errors="replace")
    return len(re.findall(r'"[A-Z]+ /wechatpay/v3/\S* HTTP/1\.1" 500 ', log))


def _summary(run: Run, seen: Observed, receiver: WebhookReceiver) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    timeouts = 0
    for _, status, message in seen.payments.values():
        statuses[status] = statuses.get(status, 0) + 1
        timeouts += bool(message and "Timeout" in message)
    kills = run.killer.kills
    return {
        "flows": FLOWS,
        "flows_completed": len(run.log.results),
        "flow_errors": len(run.log.errors),
        "concurrency": CONCURRENCY,
        "kills": len(kills),
        "kills_api": sum(k.target == "api" for k in kills),
        "kills_worker": sum(k.target == "worker" for k in kills),
        "kill_log": [
            [k.target, round(k.at_s, 1), k.flows_finished, round(k.down_s, 1)] for k in kills
        ],
        "client_retries": run.retries,
        "stragglers": run.log.stragglers,
        "alipay_faults_fired": dict(run.injector.alipay_fired),
        "wechatpay_fault_windows": dict(run.injector.wechat_windows),
        "wechatpay_api_500s": seen.wechat_api_errors,
        "gateway_timeouts_seen_by_knowpay": timeouts,
        "notifications": seen.notifications,
        "orders": seen.orders,
        "payments": len(seen.payments),
        "payments_by_status": statuses,
        "paid_at_simulator": len(seen.sim_paid),
        "paid_orders": len(seen.paid_orders),
        "order_paid_events": seen.order_paid_events,
        "webhook_deliveries_received": receiver.deliveries,
        "webhook_orders_received": len(receiver.paid_orders),
        "webhook_bad_signatures": receiver.bad_signatures,
        "idempotency_keys_in_flight": len(seen.in_flight_keys),
        "ledger_check_ok": bool(seen.ledger["ok"]),
        "api_500s": len(seen.server_errors),
        "settled": run.settled,
        "after_flows_unpaid_payments": run.missing_after_flows[0],
        "after_flows_unannounced_orders": run.missing_after_flows[1],
    }


def _report(summary: dict[str, Any]) -> None:
    line = json.dumps(summary, sort_keys=True)
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(line + "\n")
    print("chaos-summary " + line)


# -- the test -------------------------------------------------------------------------------


def test_chaos_kills_and_faults_lose_nothing(server_url: str) -> None:
    laps = Laps()
    seed = random.SystemRandom().randrange(2**32)
    shutil.rmtree(LOGS, ignore_errors=True)
    options = StackOptions(
        server_url=server_url, time_scale=TIME_SCALE, log_dir=LOGS, env=CHAOS_ENV
    )
    with webhook_receiver() as receiver:
        with Stack(options) as stack:
            api_key = stack.cli("apps", "create", "--name", "chaos platform")["api_key"]
            laps.lap("setup")
            run = asyncio.run(_drive(stack, api_key, receiver, seed, laps))
            _settle(stack, run, receiver)
            seen = _observe(stack)
            laps.lap("observe")
        laps.lap("teardown")
    summary = _summary(run, seen, receiver) | {
        "seed": seed,
        "phases_s": laps.seconds,
        "test_s": laps.total_s,
    }
    _report(summary)
    _check(run, seen, receiver, f"seed {seed}, logs in {options.log_dir}")


def _check(run: Run, seen: Observed, receiver: WebhookReceiver, where: str) -> None:
    log = run.log
    assert not log.errors, f"{len(log.errors)} flows failed ({where}): {log.errors[:5]}"
    assert len(log.results) == FLOWS

    # The chaos really happened.
    kills = run.killer.kills
    assert len(kills) >= KILLS, f"only {len(kills)} kills of {KILLS}"
    if KILLS >= 2:
        assert {k.target for k in kills} == {"api", "worker"}, kills
    fired = run.injector.alipay_fired
    assert all(fired.get(kind, 0) > 0 for kind in ("http_5xx", "timeout", "lost", "duplicate")), (
        f"Alipay faults fired: {fired}"
    )
    wechat = seen.notifications["wechatpay"]
    assert wechat["lost"] > 0, f"WeChat Pay lost no notification: {wechat}"
    assert wechat["duplicated"] > 0, f"WeChat Pay duplicated no notification: {wechat}"
    assert seen.wechat_api_errors > 0, "WeChat Pay's API never failed"

    # Every flow's payment was paid at the simulator; knowpay agrees with the simulators on
    # every payment it ever created, both ways.
    client_paid = {result.payment_id for result in log.results}
    assert client_paid <= seen.sim_paid, f"not paid at the simulator: {client_paid - seen.sim_paid}"
    succeeded = {pid for pid, row in seen.payments.items() if row[1] == "succeeded"}
    missing = seen.sim_paid - succeeded
    assert not missing, (
        f"{len(missing)} payments paid at the simulator are not paid in knowpay ({where}): "
        f"{ {pid: seen.payments[pid] for pid in sorted(missing)[:5]} }"
    )
    phantom = succeeded - seen.sim_paid
    assert not phantom, f"succeeded in knowpay but not paid at the simulator: {sorted(phantom)}"

    # Exactly once: one capture entry each, no duplicates, one paying payment per paid order.
    not_once = {pid: seen.captures.get(pid) for pid in seen.sim_paid}
    not_once = {pid: kinds for pid, kinds in not_once.items() if kinds != ["payment_captured"]}
    assert not not_once, f"captures not recorded exactly once: {dict(list(not_once.items())[:5])}"
    extra = set(seen.captures) - seen.sim_paid
    assert not extra, f"captures for payments nobody paid: {sorted(extra)[:5]}"
    assert sorted(seen.paid_orders.values()) == sorted(seen.sim_paid), (
        "paid orders and paid payments differ: "
        f"{len(seen.paid_orders)} paid orders, {len(seen.sim_paid)} payments paid"
    )

    assert seen.ledger["ok"], f"ledger check: {seen.ledger['violations'][:10]}"

    # No event lost: every paid order's order.paid reached the platform, genuinely signed.
    assert receiver.bad_signatures == 0
    unannounced = set(seen.paid_orders) - receiver.orders()
    assert not unannounced, (
        f"{len(unannounced)} paid orders without an order.paid webhook ({where}): "
        f"{sorted(unannounced)[:5]}"
    )
    assert receiver.orders() <= set(seen.paid_orders)
    assert seen.order_paid_events == len(seen.paid_orders)

    assert not seen.in_flight_keys, f"idempotency keys left in flight: {seen.in_flight_keys[:5]}"
    # A flow retries its order through kills with one Idempotency-Key: one order each, even
    # when a process died between the order's commit and its answer.
    assert seen.orders == FLOWS, f"{seen.orders} orders for {FLOWS} flows ({where})"
    assert not seen.server_errors, f"knowpay answered 500 ({where}): {seen.server_errors[:5]}"
    assert run.settled, f"not settled within {SETTLE_S:.0f} s ({where})"
