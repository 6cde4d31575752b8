"""Reconciliation: a gateway's daily bill matched against the books, each kind of
discrepancy found and kept, finance resolving them, and the daily job that runs once per
gateway and day (again after a failed fetch)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from typer.testing import CliRunner

from knowpay.alerts.models import Alert
from knowpay.auth.principals import Role
from knowpay.channels.errors import ChannelUnavailable
from knowpay.channels.types import Bill, BillLine
from knowpay.cli.main import app as cli
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import get_settings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.reconciliation import service, tasks
from knowpay.reconciliation.models import ReconciliationRun
from tests.builders import Builders, Caller, Shop

RUNS = "/v1/admin/reconciliations"
DAY = date(2026, 1, 1)  # the frozen clock's day (UTC, the test channel's bill clock)


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


@pytest.fixture
def finance(build: Builders) -> Caller:
    return build.staff(Role.FINANCE)


@pytest.fixture
def ctx(app: FastAPI, database: Database, clock: FrozenClock) -> tasks.ReconciliationContext:
    return tasks.ReconciliationContext(database, app.state.channel_registry, clock)


def _paid(shop: Shop) -> dict[str, Any]:
    payment = shop.pay(shop.order())
    shop.confirm(payment)
    return payment


def _refund(shop: Shop, payment: dict[str, Any], amount: int) -> dict[str, Any]:
    body = {"order_id": payment["order_id"], "amount": amount, "reason": "other"}
    made = shop.client.post("/v1/refunds", json=body, headers=shop.app.headers)
    assert made.status_code == 201, made.text
    refund: dict[str, Any] = made.json()
    assert refund["status"] == "succeeded"
    return refund


def _run(shop: Shop, finance: Caller, bill_date: date = DAY) -> Any:
    return shop.client.post(
        RUNS, json={"gateway": "test", "bill_date": bill_date.isoformat()}, headers=finance.headers
    )


def test_a_bill_that_agrees_with_the_books_is_balanced(
    shop: Shop, finance: Caller, clock: FrozenClock
) -> None:
    _paid(shop)
    _paid(shop)
    assert _run(shop, finance).json()["code"] == "bill_not_ready"  # the day is not over
    clock.advance(timedelta(days=1))
    finance = shop.build.relogin(finance)  # a day later: a new token
    made = _run(shop, finance)
    assert made.status_code == 201, made.text
    run = made.json()
    assert (run["status"], run["bill_lines"], run["matched"], run["discrepancy_count"]) == (
        "balanced",
        2,
        2,
        0,
    )
    assert run["discrepancies"] == []
    assert run["totals"]["CNY"] == {
        "gateway_payments": 19800,
        "knowpay_payments": 19800,
        "gateway_refunds": 0,
        "knowpay_refunds": 0,
    }
    assert run["started_by"] == f"finance:{finance.id}"
    read = shop.client.get(f"{RUNS}/{run['id']}", headers=finance.headers).json()
    assert (read["id"], read["discrepancies"]) == (run["id"], [])
    listed = shop.client.get(RUNS, params={"gateway": "test"}, headers=finance.headers).json()
    assert [r["id"] for r in listed["data"]] == [run["id"]]


def test_every_kind_of_discrepancy_is_found_and_named(
    shop: Shop, database: Database, clock: FrozenClock, ctx: tasks.ReconciliationContext
) -> None:
    matched, other_amount, absent = _paid(shop), _paid(shop), _paid(shop)
    pending = shop.pay(shop.order())
    kept = _refund(shop, matched, 1000)
    not_on_bill = _refund(shop, absent, 2000)
    at = clock.now()

    def line(out_trade_no: str, minor: int, kind: str = "payment") -> BillLine:
        return BillLine(out_trade_no, f"T{out_trade_no}", Money(minor, "CNY"), kind, at)  # type: ignore[arg-type]

    bill = Bill(
        DAY,
        [
            line(matched["id"], 9900),
            line(other_amount["id"], 9800),
            line(pending["id"], 9900),
            line("pay_not_knowpays", 500),
            line(matched["id"], 1000, "refund"),
            line(other_amount["id"], 500, "refund"),
        ],
    )
    source = tasks.bill_sources(ctx.registry)["test"]
    with database.session_scope() as session:
        run_id = service.start_run(session, "test", DAY, "finance:x", at).id
        run = service.finish_run(session, run_id, source, bill, at)
        assert (run.status, run.matched, run.discrepancies) == ("discrepancies", 2, 6)
        found = {
            (d.kind, d.line_kind, d.payment_id, d.refund_id, d.gateway_amount_minor,
             d.knowpay_amount_minor)
            for d in service.discrepancies_of(session, run_id)
        }  # fmt: skip
    assert found == {
        ("amount_mismatch", "payment", other_amount["id"], None, 9800, 9900),
        ("status_mismatch", "payment", pending["id"], None, 9900, 9900),
        ("missing_in_knowpay", "payment", None, None, 500, None),
        ("missing_in_knowpay", "refund", other_amount["id"], None, 500, None),
        ("missing_at_gateway", "payment", absent["id"], None, None, 9900),
        ("missing_at_gateway", "refund", absent["id"], not_on_bill["id"], None, 2000),
    }
    assert kept["id"] not in {d[3] for d in found}  # the refund on the bill matched
    with database.session_scope(read_only=True) as session:
        alerts = session.scalars(select(Alert.kind).where(Alert.subject_id == run_id)).all()
    assert alerts == ["reconciliation_discrepancies"]


def test_finance_resolves_a_discrepancy_once_and_it_leaves_the_open_list(
    shop: Shop, finance: Caller, build: Builders, clock: FrozenClock, database: Database
) -> None:
    payment = _paid(shop)  # a capture the (empty) bill below will not show
    clock.advance(timedelta(days=1))
    finance = build.relogin(finance)
    registry = shop.client.app.state.channel_registry  # type: ignore[attr-defined]
    source = tasks.bill_sources(registry)["test"]
    with database.session_scope() as session:
        run_id = service.start_run(session, "test", DAY, "finance:x", clock.now()).id
        service.finish_run(session, run_id, source, Bill(DAY, []), clock.now())
    open_list = shop.client.get(
        "/v1/admin/reconciliation-discrepancies",
        params={"status": "open"},
        headers=finance.headers,
    ).json()["data"]
    [missing] = [d for d in open_list if d["payment_id"] == payment["id"]]
    assert missing["kind"] == "missing_at_gateway"
    path = f"/v1/admin/reconciliation-discrepancies/{missing['id']}/resolve"
    support = build.staff(Role.SUPPORT)
    note = {"note": "captured at 23:59:59.9; on the next day's bill"}
    assert shop.client.post(path, json=note, headers=support.headers).status_code == 403
    assert shop.client.post(path, json={"note": ""}, headers=finance.headers).status_code == 422
    resolved = shop.client.post(path, json=note, headers=finance.headers)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved_by"] == f"finance:{finance.id}"
    again = shop.client.post(path, json=note, headers=finance.headers)
    assert (again.status_code, again.json()["code"]) == (409, "discrepancy_already_resolved")
    still_open = shop.client.get(
        "/v1/admin/reconciliation-discrepancies",
        params={"status": "open"},
        headers=finance.headers,
    ).json()["data"]
    assert missing["id"] not in {d["id"] for d in still_open}
    audit = shop.client.get(
        "/v1/admin/audit",
        params={"action": "reconciliation.discrepancy_resolved", "object_id": missing["id"]},
        headers=build.staff(Role.ADMIN).headers,
    ).json()["data"]
    assert [record["actor"] for record in audit] == [f"staff:{finance.id}"]


def test_only_finance_and_admins_reconcile_and_bad_requests_change_nothing(
    shop: Shop, build: Builders, clock: FrozenClock
) -> None:
    clock.advance(timedelta(days=1))
    finance = build.staff(Role.FINANCE)
    body = {"gateway": "test", "bill_date": DAY.isoformat()}
    for caller in (build.staff(Role.SUPPORT), build.relogin(shop.buyer), shop.app):
        assert shop.client.post(RUNS, json=body, headers=caller.headers).status_code == 403
        assert shop.client.get(RUNS, headers=caller.headers).status_code == 403
    unknown = shop.client.post(
        RUNS, json={"gateway": "unionpay", "bill_date": "2026-01-01"}, headers=finance.headers
    )
    assert (unknown.status_code, unknown.json()["code"]) == (422, "gateway_without_bills")
    for bad in ({"gateway": "test"}, {**body, "bill_date": "yesterday"}, {**body, "x": 1}):
        assert shop.client.post(RUNS, json=bad, headers=finance.headers).status_code == 422
    missing = shop.client.get(f"{RUNS}/rcn_0000000000000000000000000z", headers=finance.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "reconciliation_not_found")
    assert shop.client.get(RUNS, headers=finance.headers).json()["data"] == []
    admin = build.staff(Role.ADMIN)
    assert shop.client.post(RUNS, json=body, headers=admin.headers).status_code == 201


def test_the_daily_job_reconciles_each_day_once(
    shop: Shop, ctx: tasks.ReconciliationContext, clock: FrozenClock, database: Database
) -> None:
    _paid(shop)
    assert tasks.reconcile_bills(ctx) == 1  # the frozen clock's yesterday: an empty bill
    clock.advance(timedelta(days=1))
    assert tasks.reconcile_bills(ctx) == 1  # the day with the payment
    assert tasks.reconcile_bills(ctx) == 0  # done already
    with database.session_scope(read_only=True) as session:
        runs = session.scalars(
            select(ReconciliationRun).order_by(ReconciliationRun.started_at)
        ).all()
        summary = [(r.bill_date, r.status, r.matched, r.schedule_key) for r in runs]
    assert summary == [
        (DAY - timedelta(days=1), "balanced", 0, f"test:{DAY - timedelta(days=1)}:1"),
        (DAY, "balanced", 1, f"test:{DAY}:1"),
    ]


def test_a_failed_fetch_is_kept_alerted_and_tried_again_an_hour_later(
    shop: Shop,
    ctx: tasks.ReconciliationContext,
    clock: FrozenClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]
    real_fetch = adapter.fetch_bill

    def unreachable(_day: date) -> Bill:
        raise ChannelUnavailable("connection refused")

    monkeypatch.setattr(adapter, "fetch_bill", unreachable)
    assert tasks.reconcile_bills(ctx) == 1
    assert tasks.reconcile_bills(ctx) == 0  # not again at once
    clock.advance(timedelta(minutes=61))
    monkeypatch.setattr(adapter, "fetch_bill", real_fetch)
    assert tasks.reconcile_bills(ctx) == 1
    assert tasks.reconcile_bills(ctx) == 0
    with database.session_scope(read_only=True) as session:
        runs = session.scalars(
            select(ReconciliationRun).order_by(ReconciliationRun.started_at)
        ).all()
        tries = [(r.status, r.schedule_key, (r.error or "")[:30]) for r in runs]
        alerts = session.scalars(select(Alert.kind)).all()
    yesterday = DAY - timedelta(days=1)
    assert tries == [
        ("failed", f"test:{yesterday}:1", "ChannelUnavailable: connection"),
        ("balanced", f"test:{yesterday}:2", ""),
    ]
    assert alerts == ["reconciliation_failed"]


def test_a_bill_day_is_the_gateways_own_day(ctx: tasks.ReconciliationContext) -> None:
    """Alipay's and WeChat Pay's bills keep Beijing time: their day starts at 16:00 UTC."""
    source = tasks.bill_sources(ctx.registry)["test"]
    beijing = service.BillSource(
        "alipay",
        frozenset({"alipay_qr"}),
        type(source.profile)(
            currencies=frozenset({"CNY"}),
            bill_timezone=ZoneInfo("Asia/Shanghai"),
            bill_ready_after=timedelta(hours=9),
        ),
        source.fetch,
    )
    start, end = beijing.window(date(2026, 1, 2))
    assert (start.isoformat(), (end - start)) == ("2026-01-02T00:00:00+08:00", timedelta(days=1))
    assert start == datetime.fromisoformat("2026-01-01T16:00:00+00:00")
    ready = datetime.fromisoformat("2026-01-03T01:00:00+00:00")  # 09:00 in Beijing
    assert not beijing.is_complete(date(2026, 1, 2), ready - timedelta(seconds=1))
    assert beijing.is_complete(date(2026, 1, 2), ready)
    assert beijing.last_complete_day(ready) == date(2026, 1, 2)
    assert beijing.last_complete_day(ready - timedelta(seconds=1)) == date(2026, 1, 1)


def test_knowpay_reconcile_runs_one_day_from_the_command_line(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    done = runner.invoke(cli, ["reconcile", "--gateway", "test", "--date", "2026-01-01", "--json"])
    assert done.exit_code == 0, done.output
    run = json.loads(done.output)
    assert (run["status"], run["started_by"], run["discrepancies"]) == ("balanced", "cli", [])
    bad = runner.invoke(cli, ["reconcile", "--gateway", "nope", "--date", "2026-01-01", "--json"])
    assert (bad.exit_code, json.loads(bad.output)["error"]["code"]) == (
        2,
        "gateway_without_bills",
    )
    get_settings.cache_clear()


def test_a_bill_of_many_lines_is_looked_up_in_chunks_and_misses_none(
    shop: Shop, database: Database, clock: FrozenClock, ctx: tasks.ReconciliationContext
) -> None:
    paid = [_paid(shop), _paid(shop)]
    at = clock.now()
    # Unknown trades sort before knowpay's ids, so those land in a later lookup chunk.
    unknown = [
        BillLine(f"pay_0{n:05d}", f"T{n}", Money(100, "CNY"), "payment", at) for n in range(1200)
    ]
    ours = [BillLine(p["id"], f"T{p['id']}", Money(9900, "CNY"), "payment", at) for p in paid]
    source = tasks.bill_sources(ctx.registry)["test"]
    with database.session_scope() as session:
        run_id = service.start_run(session, "test", DAY, "finance:x", at).id
        run = service.finish_run(session, run_id, source, Bill(DAY, unknown + ours), at)
        assert (run.bill_lines, run.matched, run.discrepancies) == (1202, 2, 1200)


# Found by a review of the reconciliation ------------------------------------------------------


def _reconcile(
    database: Database, ctx: tasks.ReconciliationContext, day: date, lines: list[BillLine]
) -> tuple[str, set[tuple[str, str | None, str | None]]]:
    source = tasks.bill_sources(ctx.registry)["test"]
    now = ctx.clock.now()
    with database.session_scope() as session:
        run_id = service.start_run(session, "test", day, "finance:x", now).id
        service.finish_run(session, run_id, source, Bill(day, lines), now)
        found = {
            (d.kind, d.payment_id, d.refund_id) for d in service.discrepancies_of(session, run_id)
        }
    return run_id, found


def test_a_refund_line_takes_the_refund_of_its_own_day_not_an_earlier_one_of_the_same_amount(
    shop: Shop, database: Database, clock: FrozenClock, ctx: tasks.ReconciliationContext
) -> None:
    payment = _paid(shop)
    _refund(shop, payment, 1000)  # day one, on day one's bill
    clock.advance(timedelta(days=1))
    _refund(shop, payment, 1000)  # day two: the line below is this one
    line = BillLine(payment["id"], "T1", Money(1000, "CNY"), "refund", clock.now())
    _, found = _reconcile(database, ctx, DAY + timedelta(days=1), [line])
    assert found == set()  # it was day two's refund "missing_at_gateway"


def test_a_second_payment_line_for_one_payment_is_money_the_books_do_not_show(
    shop: Shop, database: Database, clock: FrozenClock, ctx: tasks.ReconciliationContext
) -> None:
    payment = _paid(shop)
    at = clock.now()
    lines = [
        BillLine(payment["id"], "T1", Money(9900, "CNY"), "payment", at),
        BillLine(payment["id"], "T2-another-trade", Money(9900, "CNY"), "payment", at),
    ]
    _, found = _reconcile(database, ctx, DAY, lines)
    assert found == {("duplicate_at_gateway", payment["id"], None)}


def test_running_a_day_again_leaves_only_its_newest_runs_discrepancies_open(
    shop: Shop, database: Database, ctx: tasks.ReconciliationContext, finance: Caller
) -> None:
    payment = _paid(shop)
    _reconcile(database, ctx, DAY, [])  # the capture is missing from an empty bill
    _reconcile(database, ctx, DAY, [])  # again: the same discrepancy, once in the list
    open_ones = shop.client.get(
        "/v1/admin/reconciliation-discrepancies",
        params={"status": "open"},
        headers=finance.headers,
    ).json()["data"]
    assert [(d["kind"], d["payment_id"]) for d in open_ones] == [
        ("missing_at_gateway", payment["id"])
    ]
    line = BillLine(payment["id"], "T1", Money(9900, "CNY"), "payment", ctx.clock.now())
    _reconcile(database, ctx, DAY, [line])  # the gateway's corrected bill: balanced
    assert (
        shop.client.get(
            "/v1/admin/reconciliation-discrepancies",
            params={"status": "open"},
            headers=finance.headers,
        ).json()["data"]
        == []
    )


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1969-12-31"])
def test_a_day_no_bill_can_be_of_is_a_422_that_writes_nothing(
    shop: Shop, finance: Caller, day: str
) -> None:
    """Found by a review: 9999-12-31 was a 500 (date overflow), 0001-01-01 a 500 that left
    a run `running` for ever."""
    answer = shop.client.post(
        RUNS, json={"gateway": "test", "bill_date": day}, headers=finance.headers
    )
    assert answer.status_code == 422, answer.text
    assert shop.client.get(RUNS, headers=finance.headers).json()["data"] == []


def test_a_bill_the_adapter_cannot_read_fails_its_run_instead_of_leaving_it_running(
    shop: Shop,
    ctx: tasks.ReconciliationContext,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = shop.client.app.state.channel_registry.adapter("test")  # type: ignore[attr-defined]

    def short_row(_day: date) -> Bill:
        raise IndexError("list index out of range")  # as a bill parser met a short row

    monkeypatch.setattr(adapter, "fetch_bill", short_row)
    assert tasks.reconcile_bills(ctx) == 1
    with database.session_scope(read_only=True) as session:
        [run] = session.scalars(select(ReconciliationRun)).all()
        assert (run.status, run.error) == ("failed", "IndexError while reading the bill")


def test_an_abandoned_scheduled_try_is_tried_again_at_once(
    ctx: tasks.ReconciliationContext, database: Database, clock: FrozenClock
) -> None:
    day = ctx.clock.now().date() - timedelta(days=1)
    with database.session_scope() as session:  # a try whose process died
        service.start_run(session, "test", day, "system", clock.now(), f"test:{day}:1")
    assert tasks.reconcile_bills(ctx) == 0  # still young
    clock.advance(tasks.ABANDONED_AFTER)
    assert tasks.reconcile_bills(ctx) == 1
    with database.session_scope(read_only=True) as session:
        runs = session.scalars(select(ReconciliationRun).order_by(ReconciliationRun.id)).all()
        assert [(r.status, r.schedule_key) for r in runs] == [
            ("failed", f"test:{day}:1"),
            ("balanced", f"test:{day}:2"),
        ]


def test_a_refund_line_named_by_the_refunds_own_number_finds_its_payment_by_trade_number(
    shop: Shop, database: Database, clock: FrozenClock, ctx: tasks.ReconciliationContext
) -> None:
    """UnionPay's file names a refund by the refund's own order number and the consume by
    its queryId: a refund of a payment captured on an earlier day (not on this bill) is
    matched through the payment's gateway trade number, not reported twice."""
    payment = _paid(shop)
    trade_no = shop.get(f"/v1/payments/{payment['id']}")["gateway_trade_no"]
    assert trade_no
    clock.advance(timedelta(days=1))
    refund = _refund(shop, payment, 1000)
    line = BillLine(refund["id"], trade_no, Money(1000, "CNY"), "refund", clock.now())
    _, found = _reconcile(database, ctx, DAY + timedelta(days=1), [line])
    assert found == set()
    stranger = BillLine("rf_unknown", "T-unknown", Money(1000, "CNY"), "refund", clock.now())
    _, found = _reconcile(database, ctx, DAY + timedelta(days=1), [line, stranger])
    assert found == {("missing_in_knowpay", None, None)}
