"""`knowpay bench`: paid flows per second at a fixed concurrency, per-endpoint latency, a
duplicate-notification storm, and PostgreSQL's own pgbench TPC-B on the same server as the
yardstick (see docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from knowpay.bench.flows import CHANNEL_GATEWAY, FlowError, Platform, make_catalog
from knowpay.bench.stack import (
    DEFAULT_SERVER_URL,
    CpuWatch,
    Stack,
    StackOptions,
    group_cpu_seconds,
    machine_cpu_seconds,
    postgres_serving,
)


@dataclass
class BenchOptions:
    server_url: str = DEFAULT_SERVER_URL
    concurrency: int = 64
    warmup_s: float = 10.0
    duration_s: float = 30.0
    channels: tuple[str, ...] = ("alipay_qr", "wechat_native")
    buyers: int = 64
    products: int = 32
    storm_payments: int = 1000
    storm_copies: int = 10
    pgbench_scale: int = 10
    pgbench_clients: int = 16
    pgbench_seconds: int = 20
    api_workers: int = 2
    log_dir: Path = field(default_factory=lambda: Path("var/bench"))
    # Shorter runs of the first channel at fewer concurrent flows: where p99 stays under the
    # issue's 100 ms (empty: none).
    latency_sweep: tuple[int, ...] = (1, 4, 16, 32)
    sweep_warmup_s: float = 3.0
    sweep_duration_s: float = 10.0


# The benchmark drives one platform key flat out; a per-key limit (1000/s by default) would
# turn it into a test of the rate limiter. Everything else is knowpay's production default.
BENCH_ENV = {"KNOWPAY_RATE_LIMITS__API_PER_KEY": "1000000/second"}


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"count": 0}
    cuts = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else []
    pick = (lambda p: cuts[p - 1]) if cuts else (lambda _p: samples[0])
    return {
        "count": len(samples),
        "p50_ms": round(pick(50), 2),
        "p95_ms": round(pick(95), 2),
        "p99_ms": round(pick(99), 2),
        "max_ms": round(max(samples), 2),
    }


# -- the paid-flow load -------------------------------------------------------------------


async def load_phase(
    stack: Stack, platform_: Platform, channel: str, options: BenchOptions
) -> tuple[dict[str, Any], int]:
    """`concurrency` flows back to back for warm-up + duration; counts those that finish
    inside the measured window. Returns the phase's figures and every flow completed."""
    start = time.monotonic()
    window_start = start + options.warmup_s
    window_end = window_start + options.duration_s
    completed_total = 0
    completed_in_window = 0
    window_payments: set[str] = set()
    errors: list[str] = []

    async def flows() -> None:
        nonlocal completed_total, completed_in_window
        while time.monotonic() < window_end:
            began = time.monotonic()
            try:
                result = await platform_.paid_flow(channel)
            except FlowError as error:
                errors.append(str(error))
                continue
            completed_total += 1
            finished = time.monotonic()
            if window_start <= finished <= window_end:
                completed_in_window += 1
            if began >= window_start:
                window_payments.add(result.payment_id)

    async def window() -> None:
        await asyncio.sleep(options.warmup_s)
        platform_.latencies.recording = True
        await asyncio.sleep(options.duration_s)
        platform_.latencies.recording = False

    platform_.latencies.samples.clear()
    platform_.connection_resends = 0
    cpu_before, counters_before = cpu_by_part(stack), _database_counters(stack)
    # The server's autovacuum workers and overflow connections come and go: watched live.
    with CpuWatch(postgres_serving(stack.database_name)) as database_cpu:
        await asyncio.gather(window(), *(flows() for _ in range(options.concurrency)))
    cpu_spent = {k: round(v - cpu_before[k], 1) for k, v in cpu_by_part(stack).items()}
    cpu_spent["postgresql"] = round(database_cpu.seconds, 1)
    cpu_spent["whole_machine"] = cpu_spent.pop("whole_machine")  # the sum's line comes last
    commits_after, connections_after = _database_counters(stack)
    commits = commits_after - counters_before[0]
    connections = connections_after - counters_before[1]
    notify_ms = await _notify_latencies(platform_, CHANNEL_GATEWAY[channel], window_payments)
    endpoints = {
        name: percentiles(samples) for name, samples in sorted(platform_.latencies.samples.items())
    }
    endpoints[f"POST /notify/{CHANNEL_GATEWAY[channel]}"] = percentiles(notify_ms)
    return (
        {
            "channel": channel,
            "concurrency": options.concurrency,
            "warmup_s": options.warmup_s,
            "duration_s": options.duration_s,
            "flows_completed_in_window": completed_in_window,
            "paid_flows_per_s": round(completed_in_window / options.duration_s, 2),
            "flows_completed_total": completed_total,
            "errors": len(errors),
            "connection_resends": platform_.connection_resends,
            "error_samples": errors[:10],
            "endpoints": endpoints,
            # Where the machine's CPU went during the whole phase (warm-up included), in CPU
            # seconds: everything shares the same two cores.
            "cpu_seconds": cpu_spent,
            # The same per flow finished in the phase: what one paid flow costs each part.
            "cpu_ms_per_flow": {
                part: round(1000 * seconds / max(completed_total, 1), 1)
                for part, seconds in cpu_spent.items()
            },
            # Transactions committed in knowpay's database per flow (API and worker together;
            # PostgreSQL's statistics, which lag by up to a second).
            "commits_per_flow": round(commits / max(completed_total, 1), 1),
            # Connections opened to knowpay's database per flow: a pool smaller than the
            # requests a process runs at once opens and closes its overflow connections.
            "connections_opened_per_flow": round(connections / max(completed_total, 1), 2),
        },
        completed_total,
    )


def p99_under_100ms(endpoints: dict[str, dict[str, Any]]) -> bool:
    return all(e.get("p99_ms", 0) < 100 for e in endpoints.values())


def sweep_point(phase: dict[str, Any]) -> dict[str, Any]:
    """One run of the latency sweep, summed up: its rate, errors and slowest endpoint."""
    endpoints = phase["endpoints"]
    slowest = max(endpoints, key=lambda name: endpoints[name].get("p99_ms", 0), default=None)
    return {
        "concurrency": phase["concurrency"],
        "paid_flows_per_s": phase["paid_flows_per_s"],
        "errors": phase["errors"],
        "error_samples": phase["error_samples"],
        "slowest_endpoint": slowest,
        "slowest_p99_ms": endpoints[slowest].get("p99_ms") if slowest else None,
        "p99_under_100ms": p99_under_100ms(endpoints),
        "endpoints": endpoints,
    }


def highest_concurrency_under_100ms(points: list[dict[str, Any]]) -> int | None:
    """The most concurrent flows of the sweep (and the main run) below which, and at which,
    every endpoint's p99 stayed under 100 ms."""
    best = None
    for point in sorted(points, key=lambda p: p["concurrency"]):
        if not point["p99_under_100ms"]:
            break
        best = point["concurrency"]
    return best


OUTSIDE_KNOWPAY = ("simulators", "load_generator")
"""The parts of a run that stand in for the world: the gateways and the platform."""


def ceiling(cpu_ms_per_flow: dict[str, float], cores: int, pgbench_tps: float) -> dict[str, Any]:
    """The paid flows per second these cores could carry if knowpay (API, worker) and
    PostgreSQL used no CPU at all: the simulators and the load generator share the machine
    and spend their own CPU on every flow."""
    outside_ms = sum(cpu_ms_per_flow.get(part, 0.0) for part in OUTSIDE_KNOWPAY)
    if outside_ms <= 0:
        return {}
    flows_per_s = cores * 1000 / outside_ms
    return {
        "outside_ms_per_flow": round(outside_ms, 1),
        "paid_flows_per_s": round(flows_per_s, 1),
        "flow_efficiency": round(flows_per_s * 3 / pgbench_tps, 3),
    }


def cpu_by_part(stack: Stack) -> dict[str, float]:
    assert stack.api is not None
    assert stack.worker is not None
    return {
        "api": stack.api.cpu_seconds(),
        "worker": stack.worker.cpu_seconds(),
        "simulators": stack.sandbox.cpu_seconds(),
        "load_generator": group_cpu_seconds(lambda pid, _pgid, _comm: pid == os.getpid()),
        # Everything the machine ran, these parts and whatever else (the kernel, strays).
        "whole_machine": machine_cpu_seconds(),
    }


def _database_counters(stack: Stack) -> tuple[int, int]:
    """Transactions committed and sessions opened so far in knowpay's database (`sessions`
    is PostgreSQL 14's; 0 before it)."""
    [row] = stack.rows(
        "SELECT xact_commit, coalesce((to_jsonb(d) ->> 'sessions')::bigint, 0)"
        " FROM pg_stat_database d WHERE datname = current_database()"
    )
    return int(row[0]), int(row[1])


async def _notify_latencies(platform_: Platform, gateway: str, payments: set[str]) -> list[float]:
    """How long knowpay took to answer each notification of a flow begun in the window, as
    the simulator timed it."""
    response = await platform_.gateways.get(f"/{gateway}/_notifications")
    response.raise_for_status()
    return [
        ms
        for delivery in response.json()
        if delivery.get("out_trade_no") in payments
        for attempt in delivery["attempts"]
        for ms in attempt.get("answer_ms", [])
    ]


# -- the duplicate storm ----------------------------------------------------------------


async def storm_phase(stack: Stack, platform_: Platform, options: BenchOptions) -> dict[str, Any]:
    """`storm_payments` pending Alipay payments, each paid once at the gateway, whose
    notification the simulator sends `storm_copies` times at once (its `duplicate` fault)."""
    gate = asyncio.Semaphore(options.concurrency)

    async def pending() -> str:
        async with gate:
            return (await platform_.paid_flow("alipay_qr", pay=False)).payment_id

    payment_ids = list(await asyncio.gather(*(pending() for _ in range(options.storm_payments))))
    sandbox = platform_.gateways
    (await sandbox.post("/alipay/_reset")).raise_for_status()
    fault = {"kind": "duplicate", "count": options.storm_copies}
    (await sandbox.post("/alipay/_faults", json=fault)).raise_for_status()

    async def pay(payment_id: str) -> None:
        async with gate:
            await platform_.pay_at_gateway("alipay_qr", payment_id)

    began_at = datetime.now(UTC)
    began = time.monotonic()
    await asyncio.gather(*(pay(p) for p in payment_ids))
    deliveries = await _storm_finished(sandbox, len(payment_ids), options.storm_copies)
    waited_s = time.monotonic() - began
    (await sandbox.post("/alipay/_reset")).raise_for_status()

    answers = [a for d in deliveries for t in d["attempts"] for a in t["answers"]]
    last_answer = max(datetime.fromisoformat(t["at"]) for d in deliveries for t in d["attempts"])
    elapsed_s = max((last_answer - began_at).total_seconds(), 1e-6)
    captured = stack.scalar(
        "SELECT count(*) FROM journal_entries WHERE kind = 'payment_captured'"
        " AND payment_id = ANY(:ids)",
        ids=payment_ids,
    )
    duplicates = stack.scalar(
        "SELECT count(*) FROM journal_entries WHERE kind = 'duplicate_captured'"
        " AND payment_id = ANY(:ids)",
        ids=payment_ids,
    )
    return {
        "payments": len(payment_ids),
        "copies_each": options.storm_copies,
        "notifications_sent": len(answers),
        "answered_success": sum(1 for a in answers if _alipay_success(a)),
        # Any copy not answered `success` (e.g. the connection dropped before knowpay saw it):
        # shown, not hidden; the gateway would send such a notification again.
        "other_answers": [a for a in answers if not _alipay_success(a)][:10],
        "seconds": round(elapsed_s, 2),
        "seconds_until_observed": round(waited_s, 2),
        "notifications_per_s": round(len(answers) / elapsed_s, 1),
        "notify_latency": percentiles(
            [ms for d in deliveries for t in d["attempts"] for ms in t.get("answer_ms", [])]
        ),
        "payment_captured_entries": int(captured),
        "duplicate_captured_entries": int(duplicates),
        "exactly_one_entry_each": int(captured) == len(payment_ids) and int(duplicates) == 0,
    }


def _alipay_success(answer: dict[str, Any]) -> bool:
    return bool(answer["status_code"] == 200 and answer["body"] == "success")


async def _storm_finished(
    sandbox: httpx.AsyncClient, payments: int, copies: int
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 600
    while True:
        found: list[dict[str, Any]] = (await sandbox.get("/alipay/_notifications")).json()
        done = [d for d in found if d["delivered"] or d["finished"]]
        if len(found) >= payments and len(done) == len(found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"storm: {len(done)} of {payments} deliveries finished")
        await asyncio.sleep(0.25)


# -- pgbench ------------------------------------------------------------------------------


def pgbench_baseline(options: BenchOptions) -> dict[str, Any]:
    """TPC-B (pgbench's default script) on a database of its own on the same server."""
    url = make_url(options.server_url)
    name = f"knowpay_pgbench_{int(time.time())}"
    admin = create_engine(options.server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    connect = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    connect += ["-U", url.username or "postgres"]
    try:
        init = ["pgbench", "-i", "-q", "-s", str(options.pgbench_scale), *connect, name]
        subprocess.run(init, check=True, capture_output=True)
        run = [
            "pgbench",
            "-c",
            str(options.pgbench_clients),
            "-j",
            "2",
            "-T",
            str(options.pgbench_seconds),
            *connect,
            name,
        ]
        # pgbench's connections end with it: watched while they live.
        with CpuWatch(postgres_serving(name)) as server_cpu:
            output = subprocess.run(run, check=True, capture_output=True, text=True).stdout
        server_cpu_s = server_cpu.seconds
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    transactions = re.search(r"number of transactions actually processed: (\d+)", output)
    if tps is None:
        raise RuntimeError(f"pgbench printed no tps:\n{output}")
    return {
        "workload": "TPC-B (pgbench built-in)",
        "scale": options.pgbench_scale,
        "clients": options.pgbench_clients,
        "threads": 2,
        "seconds": options.pgbench_seconds,
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        # What one TPC-B transaction cost the server's CPU, to weigh a paid flow's against.
        "postgresql_cpu_ms_per_transaction": (
            round(1000 * server_cpu_s / int(transactions.group(1)), 3)
            if transactions and int(transactions.group(1))
            else None
        ),
        "command": " ".join([*run[:-1], "<db>"]),
    }


# -- the whole run --------------------------------------------------------------------------


def run_bench(options: BenchOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    stack_options = StackOptions(
        server_url=options.server_url,
        api_workers=options.api_workers,
        log_dir=options.log_dir,
        env=BENCH_ENV,
    )
    started = datetime.now(UTC)
    with Stack(stack_options) as stack:
        say(f"knowpay at {stack.api_url} (--workers {options.api_workers}) + worker + sandbox")
        created = stack.cli("apps", "create", "--name", "bench platform")
        phases, sweep, storm, completed = asyncio.run(
            _drive(stack, created["api_key"], options, say)
        )
        ledger = stack.cli("ledger", "check")
        paid_orders = int(stack.scalar("SELECT count(*) FROM orders WHERE status = 'paid'"))
        server_version = str(stack.scalar("SHOW server_version"))
        say("pgbench TPC-B baseline …")
        baseline = pgbench_baseline(options)
    return _report(
        options,
        started,
        (phases, sweep, storm),
        baseline,
        ledger,
        paid_orders,
        completed,
        server_version,
    )


async def _drive(
    stack: Stack, api_key: str, options: BenchOptions, say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], int]:
    """The channels' runs, the latency sweep, the duplicate storm, and the flows completed."""
    catalog = await make_catalog(
        stack.api_url, api_key, buyers=options.buyers, products=options.products
    )
    platform_ = Platform(stack.api_url, stack.sandbox_url, catalog, concurrency=options.concurrency)
    try:
        phases = []
        completed = 0
        for channel in options.channels:
            say(
                f"{channel}: {options.concurrency} concurrent flows, {options.warmup_s:g} s "
                f"warm-up + {options.duration_s:g} s measured …"
            )
            phase, done = await load_phase(stack, platform_, channel, options)
            phases.append(phase)
            completed += done
            say(f"  {phase['paid_flows_per_s']} paid flows/s, {phase['errors']} errors")
            for sample in phase["error_samples"]:
                say(f"  error: {sample}")
        sweep, swept = await _latency_sweep(stack, platform_, options, say)
        completed += swept
        say(f"duplicate storm: {options.storm_payments} payments × {options.storm_copies} …")
        storm = await storm_phase(stack, platform_, options)
        say(f"  {storm['notifications_per_s']} notifications/s")
    finally:
        await platform_.aclose()
    return phases, sweep, storm, completed


async def _latency_sweep(
    stack: Stack, platform_: Platform, options: BenchOptions, say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], int]:
    points, completed = [], 0
    channel = options.channels[0]
    for concurrency in options.latency_sweep:
        say(f"{channel}: {concurrency} concurrent flows (latency sweep) …")
        shorter = replace(
            options,
            concurrency=concurrency,
            warmup_s=options.sweep_warmup_s,
            duration_s=options.sweep_duration_s,
        )
        phase, done = await load_phase(stack, platform_, channel, shorter)
        completed += done
        point = sweep_point(phase)
        points.append(point)
        say(f"  {point['paid_flows_per_s']} paid flows/s, slowest p99 {point['slowest_p99_ms']} ms")
    return points, completed


def _report(
    options: BenchOptions,
    started: datetime,
    measured: tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]],
    baseline: dict[str, Any],
    ledger: dict[str, Any],
    paid_orders: int,
    completed: int,
    server_version: str,
) -> dict[str, Any]:
    phases, sweep, storm = measured
    cores = os.cpu_count() or 1
    for phase in phases:
        phase["flow_efficiency"] = round(phase["paid_flows_per_s"] * 3 / baseline["tps"], 3)
        phase["ceiling"] = ceiling(phase["cpu_ms_per_flow"], cores, baseline["tps"])
        phase["p99_under_100ms"] = p99_under_100ms(phase["endpoints"])
    main_run = [sweep_point(phases[0])] if phases else []
    return {
        "date": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": {**_versions(), "postgresql": server_version},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "environment_overrides": BENCH_ENV,
        "command": "knowpay bench",
        "flows": phases,
        "latency_sweep": {
            "channel": options.channels[0],
            "warmup_s": options.sweep_warmup_s,
            "duration_s": options.sweep_duration_s,
            "points": sweep,
            "highest_concurrency_p99_under_100ms": highest_concurrency_under_100ms(
                sweep + main_run
            ),
        },
        "duplicate_storm": storm,
        "pgbench": baseline,
        "after_run": {
            "ledger_check_ok": bool(ledger["ok"]),
            "ledger_violations": ledger["violations"][:10],
            # The storm's orders are paid too: the count covers both.
            "paid_orders": paid_orders,
            "flows_completed": completed,
            "storm_payments": storm["payments"],
            "paid_orders_match_flows": paid_orders == completed + storm["payments"],
        },
    }


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        first = meminfo.read_text().splitlines()[0]
        memory_kib = int(first.split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "os": platform.platform(),
    }


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("knowpay", "fastapi", "uvicorn", "sqlalchemy", "psycopg", "httpx", "aiohttp"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found
