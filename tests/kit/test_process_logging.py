"""knowpay's own log records reach stderr, masked, in every kind of process (`kit.logs`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from knowpay.kit.config import Settings
from tests.serving import running_server

_LOG_FROM_A_WORKER_LIKE_PROCESS = """
import logging
from knowpay.kit.logs import configure_process_logging
configure_process_logging("INFO")
log = logging.getLogger("knowpay.jobs")
log.info("receipt sent to zhang.san@example.com, mobile 13812345678")
log.debug("not at this level")
"""


def test_a_worker_process_logs_info_records_and_masks_them() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", _LOG_FROM_A_WORKER_LIKE_PROCESS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "INFO knowpay.jobs: receipt sent to z***@example.com, mobile 138****5678" in (
        finished.stderr
    )
    assert "zhang.san" not in finished.stderr
    assert "13812345678" not in finished.stderr
    assert "not at this level" not in finished.stderr


def test_serve_prints_knowpays_info_records(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # On SQLite the worker loops run inside `serve`; their start is an INFO record.
    with running_server(settings, workers=1, log=log, in_process_worker=True):
        pass
    assert "INFO knowpay.worker: worker started" in log.read_text()


def test_the_log_level_is_one_of_pythons_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWPAY_LOG_LEVEL", "warning")
    assert Settings().log_level == "WARNING"
    monkeypatch.setenv("KNOWPAY_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="KNOWPAY_LOG_LEVEL"):
        Settings()
