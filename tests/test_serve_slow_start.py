"""`knowpay serve --workers N` on a loaded machine: a server process whose start takes longer
than uvicorn's default health check (5 s) is waited for, not killed and started again."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from knowpay.kit.config import Settings
from tests.serving import running_server

SLOW_START_S = 7
SLOW_CHILDREN = f"""
import sys, time
if any("spawn_main" in part for part in sys.orig_argv):
    time.sleep({SLOW_START_S})  # a server process importing on a busy machine
"""


def test_server_processes_slow_to_start_are_waited_for_not_killed(
    settings: Settings, tmp_path: Path
) -> None:
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_CHILDREN)
    log = tmp_path / "server.log"

    with running_server(
        settings, workers=2, log=log, extra_env={"PYTHONPATH": str(slow)}, ready_within_s=45
    ) as base_url:
        assert httpx.get(f"{base_url}/healthz", trust_env=False).status_code == 200
        deadline = time.monotonic() + 30  # the other process may still be on its way
        while log.read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

    started = log.read_text()
    assert "died" not in started, started
    assert started.count("Application startup complete") == 2, started
