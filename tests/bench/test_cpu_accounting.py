"""The benchmark's CPU figures read from /proc: the whole machine, and PostgreSQL's work for
one database only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from knowpay.bench.stack import machine_cpu_seconds, postgres_cpu_seconds
from knowpay.kit.db import sqlalchemy_url

linux_only = pytest.mark.skipif(
    not Path("/proc/stat").is_file(), reason="CPU accounting reads Linux's /proc"
)


def _spin(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


@linux_only
def test_the_machine_figure_counts_a_busy_process() -> None:
    before = machine_cpu_seconds()
    _spin(0.3)
    assert machine_cpu_seconds() - before >= 0.25


@linux_only
@pytest.mark.postgres_only
def test_postgres_cpu_counts_the_databases_backends_and_not_anothers() -> None:
    url = os.environ.get("KNOWPAY_TEST_DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.skip("needs PostgreSQL (KNOWPAY_TEST_DATABASE_URL)")
    engine = create_engine(sqlalchemy_url(url))
    if engine.url.host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip("the server is not on this machine")
    database = engine.url.database or ""
    try:
        with engine.connect() as connection:
            before = postgres_cpu_seconds(database)
            elsewhere_before = postgres_cpu_seconds("no_such_database_" + str(os.getpid()))
            # About a second of the server's CPU, in this database's backend.
            connection.execute(text("SELECT count(*) FROM generate_series(1, 8000000)"))
            spent = postgres_cpu_seconds(database) - before
            spent_elsewhere = postgres_cpu_seconds("no_such_database_" + str(os.getpid()))
    finally:
        engine.dispose()
    assert spent >= 0.2, f"{spent} s"
    # Only the server-wide processes count for another database: not this query.
    assert spent_elsewhere - elsewhere_before < spent / 2
