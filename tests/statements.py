"""The SQL a piece of code sends: for tests that pin round trips on a hot path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import event as db_event


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement `engine` executes inside the block, in order."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    db_event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        db_event.remove(engine, "before_cursor_execute", record)
