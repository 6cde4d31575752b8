"""The benchmark's figures as JSON (raw) and as the Markdown section of docs/benchmarks.md
that sits between the `bench:results` markers (the rest of that page is written by hand)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


def render(result: dict[str, Any]) -> str:
    machine, versions = result["machine"], result["versions"]
    lines = [
        f"Run on {result['date']} by `{result['command']}`: {machine['cores']} cores "
        f"({machine['cpu']}), {machine['memory_gib']} GiB, {machine['os']}; "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
        + ".",
        "",
        "| channel | paid flows/s | flow efficiency | errors | p99 < 100 ms everywhere |",
        "|---|---:|---:|---:|---|",
    ]
    for phase in result["flows"]:
        lines.append(
            _row(
                f"`{phase['channel']}`",
                phase["paid_flows_per_s"],
                phase["flow_efficiency"],
                phase["errors"],
                _yes_no(phase["p99_under_100ms"]),
            )
        )
    baseline = result["pgbench"]
    lines += [
        "",
        f"pgbench baseline: {baseline['tps']} tps ({baseline['workload']}, scale "
        f"{baseline['scale']}, {baseline['clients']} clients, {baseline['seconds']} s: "
        f"`{baseline['command']}`). Flow efficiency = paid flows/s × 3 / pgbench tps.",
        "",
        *_server_weight(result),
    ]
    for phase in result["flows"]:
        lines += [
            f"Latency per endpoint, `{phase['channel']}`, {phase['concurrency']} concurrent "
            f"flows, {phase['duration_s']:g} s after {phase['warmup_s']:g} s warm-up:",
            "",
            "| endpoint | requests | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, figures in phase["endpoints"].items():
            lines.append(
                f"| `{name}` | {figures['count']} | {figures.get('p50_ms', '-')} | "
                f"{figures.get('p95_ms', '-')} | {figures.get('p99_ms', '-')} | "
                f"{figures.get('max_ms', '-')} |"
            )
        lines += ["", *_phase_notes(phase), ""]
    lines += _latency_sweep(result)
    storm, after = result["duplicate_storm"], result["after_run"]
    lines += [
        f"Duplicate storm: {storm['payments']} pending Alipay payments, each notification sent "
        f"{storm['copies_each']} times at once: {storm['notifications_sent']} notifications "
        f"({storm['answered_success']} answered `success`) in {storm['seconds']} s = "
        f"**{storm['notifications_per_s']} notifications/s**; journal entries "
        f"`payment_captured` {storm['payment_captured_entries']}, `duplicate_captured` "
        f"{storm['duplicate_captured_entries']} (exactly one each: "
        f"{'yes' if storm['exactly_one_entry_each'] else 'NO'}).",
        "",
        f"After the run: `knowpay ledger check` "
        f"{'passed' if after['ledger_check_ok'] else 'FAILED'}; paid orders {after['paid_orders']}"
        f" = flows completed {after['flows_completed']} + storm payments "
        f"{after['storm_payments']}: {'yes' if after['paid_orders_match_flows'] else 'NO'}.",
    ]
    return "\n".join(lines)


def _latency_sweep(result: dict[str, Any]) -> list[str]:
    """Where the issue's p99 < 100 ms holds: shorter runs at fewer concurrent flows."""
    sweep = result.get("latency_sweep")
    if not sweep or not sweep["points"]:
        return []
    lines = [
        f"Latency at fewer concurrent flows, `{sweep['channel']}`, {sweep['duration_s']:g} s "
        f"after {sweep['warmup_s']:g} s warm-up each:",
        "",
        "| concurrent flows | paid flows/s | errors | slowest endpoint's p99 ms | "
        "p99 < 100 ms everywhere |",
        "|---:|---:|---:|---|---|",
    ]
    for point in sweep["points"]:
        lines.append(
            _row(
                point["concurrency"],
                point["paid_flows_per_s"],
                point["errors"],
                f"{point['slowest_p99_ms']} (`{point['slowest_endpoint']}`)",
                _yes_no(point["p99_under_100ms"]),
            )
        )
    lines += ["", _where_p99_held(sweep["highest_concurrency_p99_under_100ms"]), ""]
    return lines


def _where_p99_held(highest: int | None) -> str:
    if not highest:
        return "At none of these concurrencies did every endpoint's p99 stay under 100 ms."
    if highest == 1:
        return "Every endpoint's p99 stayed under 100 ms at 1 concurrent flow only."
    return f"Every endpoint's p99 stayed under 100 ms up to {highest} concurrent flows."


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _server_weight(result: dict[str, Any]) -> list[str]:
    """PostgreSQL's CPU per paid flow, counted in pgbench transactions: what a flow asks of
    the server the baseline measures."""
    per_transaction = result["pgbench"].get("postgresql_cpu_ms_per_transaction")
    if not per_transaction:
        return []
    weights = [
        f"`{phase['channel']}` {phase['cpu_ms_per_flow']['postgresql']} ms, as much as "
        f"{phase['cpu_ms_per_flow']['postgresql'] / per_transaction:.1f} TPC-B transactions"
        for phase in result["flows"]
        if phase.get("cpu_ms_per_flow", {}).get("postgresql")
    ]
    if not weights:
        return []
    return [
        f"PostgreSQL spent {per_transaction} ms of CPU per pgbench transaction; per paid flow: "
        + "; ".join(weights)
        + ".",
        "",
    ]


def _phase_notes(phase: dict[str, Any]) -> list[str]:
    notes = []
    cpu = phase.get("cpu_seconds")
    if cpu:
        spent = ", ".join(f"{part.replace('_', ' ')} {seconds}" for part, seconds in cpu.items())
        notes.append(f"CPU seconds over the phase (warm-up included): {spent}.")
    per_flow = phase.get("cpu_ms_per_flow")
    if per_flow:
        spent = ", ".join(f"{part.replace('_', ' ')} {ms}" for part, ms in per_flow.items())
        notes.append(f"CPU milliseconds per paid flow of the phase: {spent}.")
    bound = phase.get("ceiling")
    if bound:
        notes.append(
            f"The simulators and the load generator alone spent {bound['outside_ms_per_flow']} "
            f"ms of CPU per flow: on these cores no knowpay could pass "
            f"{bound['paid_flows_per_s']} paid flows/s (flow efficiency "
            f"{bound['flow_efficiency']}), even one whose API, worker and database cost nothing."
        )
    if "commits_per_flow" in phase and "connections_opened_per_flow" in phase:
        notes.append(
            f"{phase['commits_per_flow']} PostgreSQL commits and "
            f"{phase['connections_opened_per_flow']} connections opened per flow; "
            f"{phase.get('connection_resends', 0)} requests resent on a closed idle connection."
        )
    return notes


def write(result: dict[str, Any], json_path: Path, markdown_path: Path) -> None:
    """The raw JSON beside the page, and the page's results section replaced."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    section = f"{START}\n{render(result)}\n{END}"
    page = markdown_path.read_text(encoding="utf-8") if markdown_path.is_file() else ""
    if START in page and END in page:
        page = re.sub(
            re.escape(START) + ".*?" + re.escape(END), lambda _m: section, page, flags=re.S
        )
    else:
        page = (page.rstrip() + "\n\n" if page else "# Benchmarks\n\n") + section + "\n"
    markdown_path.write_text(page, encoding="utf-8")
