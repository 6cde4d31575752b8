"""The PostgreSQL pool pings a connection only after it sat idle, and replaces a dead one."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from knowpay.kit import db as db_module
from knowpay.kit.config import Settings
from knowpay.kit.db import Database


def _pool(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, *, idle_s: float
) -> tuple[Database, list[Any]]:
    """A one-connection pool pinging connections idle for `idle_s`, and the pings it made."""
    if not settings.database_url.startswith("postgres"):
        pytest.skip("the idle ping is PostgreSQL's (SQLite has no server to lose)")
    monkeypatch.setattr(db_module, "IDLE_BEFORE_PING_S", idle_s)
    pooled = Database(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    pings: list[Any] = []
    dialect = pooled.engine.dialect
    real_ping = dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return bool(real_ping(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    return pooled, pings


def _backend_pid(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced_when_dead(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, database: Database
) -> None:
    pooled, pings = _pool(settings, monkeypatch, idle_s=0.0)
    try:
        first = _backend_pid(pooled)
        with database.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

        second = _backend_pid(pooled)  # no error: the ping found it dead, a new one served

        assert second != first
        assert len(pings) == 1
    finally:
        pooled.dispose()


def test_a_connection_back_in_the_pool_a_moment_ago_is_not_pinged(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, database: Database
) -> None:
    pooled, pings = _pool(settings, monkeypatch, idle_s=3600.0)
    try:
        pids = {_backend_pid(pooled) for _ in range(5)}

        assert len(pids) == 1  # the same connection each time
        assert pings == []
    finally:
        pooled.dispose()
