"""Printing for the CLI: JSON for programs (`--json`), rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


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
    columns = list(rows[0].keys()) if rows else []
    cells = [
        [_default(row.get(c)) if row.get(c) is not None else "" for c in columns] for row in rows
    ]
    if not console.is_terminal:
        # Redirected to a file or a pipe: whole values, one per line or tab-separated (a table
        # as wide as a terminal would cut an API key printed once, or an id to look up).
        _print_plain(columns, cells, single=isinstance(data, Mapping))
        return
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column, overflow="fold")  # wrapped, never cut off with "…"
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)


def _print_plain(columns: list[str], cells: list[list[str]], *, single: bool) -> None:
    if single and cells:
        for column, value in zip(columns, cells[0], strict=True):
            print(f"{column}: {value}")
        return
    if columns:
        print("\t".join(columns))
    for row_cells in cells:
        print("\t".join(row_cells))


def fail(code: str, detail: str, *, as_json: bool, exit_code: int = 1) -> NoReturn:
    """Say why a command failed, as JSON on stdout for programs or in a line on stderr."""
    if as_json:
        emit({"error": {"code": code, "detail": detail}}, as_json=True)
    else:
        errors.print(f"[red]{code}[/red]: {detail}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)
