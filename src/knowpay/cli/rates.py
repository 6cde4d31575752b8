"""`knowpay rates load FILE`: exchange rates from a CSV or JSON file (for reports only)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from knowpay.cli.output import console, emit
from knowpay.kit.clock import SystemClock
from knowpay.kit.config import get_settings
from knowpay.kit.db import Database
from knowpay.reports import service
from knowpay.reports.schemas import RatesIn

rates_app = typer.Typer(help="Exchange rates used for reports in a base currency.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def _read(path: Path) -> Any:
    """Rows of `currency, base_currency, rate, date`, from CSV (with a header) or JSON (a list
    or `{"rates": [...]}`), as read: RatesIn checks that they are a list of objects."""
    # utf-8-sig: Excel's "CSV UTF-8" starts with a BOM, which would become part of `currency`.
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        return data.get("rates") if isinstance(data, dict) else data
    return list(csv.DictReader(text.splitlines()))


@rates_app.command("load")
def rates_load(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option(help="Where the rates come from")] = "file",
    as_json: JsonFlag = False,
) -> None:
    """Store dated rates; a rate for a known currency, base and date replaces it."""
    try:
        body = RatesIn.model_validate({"rates": _read(path), "source": source})
    except (ValidationError, ValueError) as exc:
        emit({"error": {"code": "invalid_rates", "detail": str(exc)}}, as_json=as_json)
        raise typer.Exit(code=2) from exc
    database = Database(get_settings())
    try:
        with database.session_scope() as session:
            stored = service.set_rates(session, body.rates, body.source, SystemClock().now())
            count = len(stored)
    finally:
        database.dispose()
    if as_json:
        emit({"loaded": count}, as_json=True)
    else:
        console.print(f"Loaded {count} exchange rates from {path}.")
