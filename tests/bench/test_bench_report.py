"""The benchmark's arithmetic and its report: percentiles, flow efficiency, the page's
results section replaced in place and the raw JSON beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from knowpay.bench import report
from knowpay.bench.run import ceiling, highest_concurrency_under_100ms, percentiles, sweep_point


def _result(paid_flows_per_s: float = 50.0, tps: float = 600.0) -> dict[str, Any]:
    endpoint = {"count": 3, "p50_ms": 10.0, "p95_ms": 20.0, "p99_ms": 30.0, "max_ms": 31.0}
    return {
        "date": "2026-11-26T03:00:00+00:00",
        "command": "knowpay bench",
        "machine": {"cores": 2, "cpu": "test cpu", "memory_gib": 24.0, "os": "Linux"},
        "versions": {"python": "3.11.7", "postgresql": "15"},
        "flows": [
            {
                "channel": "alipay_qr",
                "paid_flows_per_s": paid_flows_per_s,
                "flow_efficiency": round(paid_flows_per_s * 3 / tps, 3),
                "errors": 0,
                "p99_under_100ms": True,
                "concurrency": 64,
                "duration_s": 30.0,
                "warmup_s": 10.0,
                "endpoints": {"POST /v1/orders": endpoint},
                "cpu_seconds": {"api": 40.0, "load_generator": 2.0},
                "cpu_ms_per_flow": {"api": 53.3, "load_generator": 2.7},
                "commits_per_flow": 13.3,
                "connections_opened_per_flow": 0.92,
                "connection_resends": 0,
            }
        ],
        "pgbench": {
            "tps": tps,
            "workload": "TPC-B",
            "scale": 10,
            "clients": 16,
            "seconds": 20,
            "command": "pgbench -c 16",
        },
        "duplicate_storm": {
            "payments": 1000,
            "copies_each": 10,
            "notifications_sent": 10000,
            "answered_success": 10000,
            "seconds": 20.0,
            "notifications_per_s": 500.0,
            "payment_captured_entries": 1000,
            "duplicate_captured_entries": 0,
            "exactly_one_entry_each": True,
        },
        "after_run": {
            "ledger_check_ok": True,
            "paid_orders": 2500,
            "flows_completed": 1500,
            "storm_payments": 1000,
            "paid_orders_match_flows": True,
        },
    }


def test_percentiles_are_the_inclusive_nearest_ranks_of_the_samples() -> None:
    figures = percentiles([float(n) for n in range(1, 101)])
    assert figures["count"] == 100
    assert (figures["p50_ms"], figures["p95_ms"], figures["p99_ms"]) == (50.5, 95.05, 99.01)
    assert figures["max_ms"] == 100.0
    assert percentiles([]) == {"count": 0}
    assert percentiles([7.0])["p99_ms"] == 7.0


def test_the_report_states_the_ratio_the_storm_and_the_checks() -> None:
    text = report.render(_result())
    assert "| `alipay_qr` | 50.0 | 0.25 | 0 | yes |" in text
    assert "pgbench baseline: 600.0 tps" in text
    assert "| `POST /v1/orders` | 3 | 10.0 | 20.0 | 30.0 | 31.0 |" in text
    assert "**500.0 notifications/s**" in text
    assert "`payment_captured` 1000, `duplicate_captured` 0" in text
    assert "`knowpay ledger check` passed; paid orders 2500" in text
    assert "CPU seconds over the phase (warm-up included): api 40.0, load generator 2.0." in text
    assert "CPU milliseconds per paid flow of the phase: api 53.3, load generator 2.7." in text
    assert "13.3 PostgreSQL commits and 0.92 connections opened per flow; 0 requests" in text


def test_writing_replaces_only_the_results_section(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(
        f"# Benchmarks\n\nHow to run it.\n\n{report.START}\nold figures\n{report.END}\n\nNotes.\n",
        encoding="utf-8",
    )
    raw = tmp_path / "benchmarks.json"

    report.write(_result(paid_flows_per_s=12.5), raw, page)

    written = page.read_text(encoding="utf-8")
    assert written.startswith("# Benchmarks\n\nHow to run it.\n\n")
    assert written.endswith(f"{report.END}\n\nNotes.\n")
    assert "old figures" not in written
    assert "| `alipay_qr` | 12.5 |" in written
    assert json.loads(raw.read_text(encoding="utf-8"))["flows"][0]["paid_flows_per_s"] == 12.5


def test_the_ceiling_is_what_the_cores_carry_when_only_the_world_spends_cpu() -> None:
    per_flow = {"api": 45.0, "worker": 5.0, "simulators": 6.0, "load_generator": 2.0}
    bound = ceiling(per_flow, cores=2, pgbench_tps=3000.0)
    # 2 cores × 1000 ms ÷ 8 ms per flow = 250 flows/s; × 3 ÷ 3000 tps = 0.25.
    assert bound == {"outside_ms_per_flow": 8.0, "paid_flows_per_s": 250.0, "flow_efficiency": 0.25}
    assert ceiling({"api": 45.0}, cores=2, pgbench_tps=3000.0) == {}


def test_the_report_states_the_ceiling_of_each_phase() -> None:
    result = _result()
    result["flows"][0]["ceiling"] = {
        "outside_ms_per_flow": 8.0,
        "paid_flows_per_s": 250.0,
        "flow_efficiency": 0.25,
    }
    text = report.render(result)
    assert "alone spent 8.0 ms of CPU per flow" in text
    assert "could pass 250.0 paid flows/s (flow efficiency 0.25)" in text


def test_the_report_weighs_a_flows_database_work_in_pgbench_transactions() -> None:
    result = _result()
    result["pgbench"]["postgresql_cpu_ms_per_transaction"] = 0.5
    result["flows"][0]["cpu_ms_per_flow"]["postgresql"] = 6.0
    text = report.render(result)
    assert "PostgreSQL spent 0.5 ms of CPU per pgbench transaction" in text
    assert "`alipay_qr` 6.0 ms, as much as 12.0 TPC-B transactions" in text
    del result["pgbench"]["postgresql_cpu_ms_per_transaction"]
    assert "TPC-B transactions" not in report.render(result)


def _phase_at(concurrency: int, **p99_by_endpoint: float) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "paid_flows_per_s": concurrency * 2.5,
        "errors": 0,
        "error_samples": [],
        "endpoints": {
            name.replace("_", " "): {"count": 10, "p99_ms": p99}
            for name, p99 in p99_by_endpoint.items()
        },
    }


def test_a_sweep_point_names_its_slowest_endpoint_and_whether_all_stayed_under_100_ms() -> None:
    point = sweep_point(_phase_at(8, GET_order=40.0, POST_payment=99.9))
    assert (point["slowest_endpoint"], point["slowest_p99_ms"]) == ("POST payment", 99.9)
    assert point["p99_under_100ms"] is True
    assert sweep_point(_phase_at(16, GET_order=100.0))["p99_under_100ms"] is False


def test_the_highest_concurrency_under_100_ms_counts_from_the_lowest_up() -> None:
    points = [
        sweep_point(_phase_at(32, a=150.0)),
        sweep_point(_phase_at(8, a=20.0)),
        sweep_point(_phase_at(16, a=60.0)),
        sweep_point(_phase_at(64, a=90.0)),  # a lucky run past one that failed counts not
    ]
    assert highest_concurrency_under_100ms(points) == 16
    assert highest_concurrency_under_100ms([sweep_point(_phase_at(8, a=120.0))]) is None
    assert highest_concurrency_under_100ms([]) is None


def test_the_report_shows_the_latency_sweep() -> None:
    result = _result()
    points = [sweep_point(_phase_at(8, a=20.0)), sweep_point(_phase_at(16, a=160.0))]
    result["latency_sweep"] = {
        "channel": "alipay_qr",
        "warmup_s": 3.0,
        "duration_s": 10.0,
        "points": points,
        "highest_concurrency_p99_under_100ms": 8,
    }
    text = report.render(result)
    assert "Latency at fewer concurrent flows, `alipay_qr`, 10 s after 3 s warm-up each" in text
    assert "| 8 | 20.0 | 0 | 20.0 (`a`) | yes |" in text
    assert "| 16 | 40.0 | 0 | 160.0 (`a`) | no |" in text
    assert "p99 stayed under 100 ms up to 8 concurrent flows" in text
    result["latency_sweep"]["highest_concurrency_p99_under_100ms"] = 1
    assert "p99 stayed under 100 ms at 1 concurrent flow only." in report.render(result)
    result["latency_sweep"]["highest_concurrency_p99_under_100ms"] = None
    assert "At none of these concurrencies" in report.render(result)
