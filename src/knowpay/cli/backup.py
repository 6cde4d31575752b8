"""`knowpay backup`: a consistent copy of the embedded SQLite database while knowpay runs.
PostgreSQL has its own tools (`pg_dump`, base backups); docs/operations.md has both."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import typer

from knowpay.cli.output import emit, fail
from knowpay.kit.config import get_settings
from knowpay.kit.db import Database
from knowpay.kit.migrations import revision_of


def backup(
    to: Annotated[Path, typer.Argument(help="The file to write (it must not exist yet).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Copy the SQLite database page by page through SQLite's online backup, so that writes
    going on meanwhile leave a consistent copy (a plain `cp` of a WAL database may not)."""
    database = Database(get_settings())
    if database.dialect != "sqlite":
        fail(
            "backup_not_sqlite",
            "knowpay backup copies the embedded SQLite database; back PostgreSQL up with "
            "pg_dump -Fc or a base backup (docs/operations.md).",
            as_json=as_json,
            exit_code=2,
        )
    if to.exists():
        fail("backup_exists", f"{to} exists already; name a new file.", as_json=as_json)
    with database.engine.connect() as connection:
        revision = revision_of(connection)
    database.dispose()
    # A connection of its own, outside SQLAlchemy's transactions (which begin IMMEDIATE).
    location = Path(database.engine.url.database or "").resolve().as_uri() + "?mode=ro"
    try:
        source = sqlite3.connect(location, uri=True)
        try:
            target = sqlite3.connect(to)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        to.unlink(missing_ok=True)
        fail("backup_failed", f"The backup could not be written to {to}: {exc}", as_json=as_json)
    emit(
        {"backup": str(to), "bytes": to.stat().st_size, "revision": revision},
        as_json=as_json,
        title="knowpay backup",
    )
