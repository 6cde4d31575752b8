"""`knowpay reconcile`: one gateway's bill of one day matched against the books now, as
`POST /v1/admin/reconciliations` does (for cron, or a day the daily job gave up on)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from knowpay.cli.output import emit, fail
from knowpay.kit.clock import SystemClock
from knowpay.kit.config import get_settings
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.reconciliation import service, tasks
from knowpay.reconciliation.schemas import RunOut


def reconcile(
    gateway: Annotated[str, typer.Option(help="alipay, wechatpay, stripe, paypal or test.")],
    bill_date: Annotated[
        str, typer.Option("--date", help="The bill's day on the gateway's clock: YYYY-MM-DD.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Fetch a gateway's daily bill and match it against the books (exit 1 when it left
    discrepancies or could not be fetched)."""
    from knowpay.credentials.service import channel_registry

    try:
        day = date.fromisoformat(bill_date)
    except ValueError:
        fail("validation_error", "--date is YYYY-MM-DD", as_json=as_json, exit_code=2)
    settings = get_settings()
    database, clock = Database(settings), SystemClock()
    registry = channel_registry(settings, database, clock)
    try:
        ctx = tasks.ReconciliationContext(database, registry, clock)
        run_id = tasks.reconcile(ctx, gateway, day, "cli")
    except KnowpayError as error:
        fail(error.code, error.detail, as_json=as_json, exit_code=2)
    finally:
        registry.close()
    with database.session_scope(read_only=True) as session:
        run = service.get_run(session, run_id)
        out = RunOut.of(run, service.discrepancies_of(session, run_id))
    database.dispose()
    if as_json:
        emit(out.model_dump(mode="json"), as_json=True)
    else:
        summary = out.model_dump(mode="json", exclude={"discrepancies", "totals"})
        emit(summary, as_json=False, title="knowpay reconcile")
        for found in out.discrepancies or []:
            typer.echo(f"{found.kind} {found.line_kind} {found.out_trade_no}: {found.detail}")
    if out.status != "balanced":
        raise typer.Exit(1)
