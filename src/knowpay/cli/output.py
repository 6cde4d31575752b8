"""Printing for the CLI: JSON for programs (`--json`), rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def emit(
    data: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, as_json: bool, title: str = ""
) -> None:
    """Print `data` as JSON on stdout, or as a table for a person."""
    if as_json:
        print(json.dumps(data, default=_default, ensure_ascii=False))
        return
    rows = [data] if isinstance(data, Mapping) else list(data)
    table = Table(title=title or None)
    columns = list(rows[0].keys()) if rows else []
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_default(row.get(c)) if row.get(c) is not None else "" for c in columns))
    console.print(table)
