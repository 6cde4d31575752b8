"""The benchmark's CPU figures read from /proc: the whole machine, processes that come and
go while they are watched, and PostgreSQL's work for one database only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from knowpay.bench.stack import CpuWatch, machine_cpu_seconds, postgres_serving
from knowpay.kit.db import sqlalchemy_url

pytestmark = pytest.mark.skipif(
    not Path("/proc/stat").is_file(), reason="CPU accounting reads Linux's /proc"
)

SPIN = """
import time
until = time.process_time() + {seconds}
while time.process_time() < until:
    pass
"""


def _spin(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_the_machine_figure_counts_a_busy_process() -> None:
    before = machine_cpu_seconds()
    _spin(0.3)
    assert machine_cpu_seconds() - before >= 0.25


def test_a_watch_counts_a_process_that_started_and_ended_inside_it() -> None:
    # Read before and after, a process gone by the end would count for nothing (or less).
    children: set[int] = set()
    with CpuWatch(lambda pid, _pgid, _comm: pid in children, every_s=0.05) as watch:
        child = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=0.6)])
        children.add(child.pid)
        child.wait()
    assert 0.4 <= watch.seconds <= 1.5, watch.seconds


@pytest.mark.postgres_only
def test_postgres_work_counts_for_its_database_and_not_for_another() -> None:
    url = os.environ.get("KNOWPAY_TEST_DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.skip("needs PostgreSQL (KNOWPAY_TEST_DATABASE_URL)")
    engine = create_engine(sqlalchemy_url(url))
    if engine.url.host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip("the server is not on this machine")
    database = engine.url.database or ""
    elsewhere = postgres_serving(f"no_such_database_{os.getpid()}")
    try:
        with CpuWatch(postgres_serving(database)) as ours, CpuWatch(elsewhere) as theirs:
            with engine.connect() as connection:  # a backend that ends inside the watch
                connection.execute(text("SELECT count(*) FROM generate_series(1, 8000000)"))
            engine.dispose()
    finally:
        engine.dispose()
    # Both count the server-wide processes (busy with every database's work while a test
    # suite runs beside this one); only ours counts this query's backend.
    assert ours.seconds - theirs.seconds >= 0.2, (ours.seconds, theirs.seconds)
