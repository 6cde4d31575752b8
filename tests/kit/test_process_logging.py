"""knowpay's own log records reach stderr, masked and with their request id, in every kind
of process (`kit.logs`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from knowpay.kit.config import Settings
from tests.serving import running_server

_LOG_FROM_A_WORKER_LIKE_PROCESS = """
import logging, sys
from knowpay.kit import context
from knowpay.kit.logs import configure_process_logging
configure_process_logging("INFO", sys.argv[1])
log = logging.getLogger("knowpay.jobs")
log.info("receipt sent to zhang.san@example.com, mobile 13812345678")
log.debug("not at this level")
with context.bound(context.RequestContext(request_id="req_4f2a")):
    log.warning("inside a request")
try:
    raise ValueError("duplicate user li.si@example.com, phone 13900001111")
except ValueError:
    log.exception("refused")
"""


def _log_lines(log_format: str) -> list[str]:
    finished = subprocess.run(
        [sys.executable, "-c", _LOG_FROM_A_WORKER_LIKE_PROCESS, log_format],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for personal in ("zhang.san", "13812345678", "li.si", "13900001111"):
        assert personal not in finished.stderr  # tracebacks too
    assert "not at this level" not in finished.stderr
    return finished.stderr.splitlines()


def test_a_worker_process_logs_info_records_masked_with_their_request_id() -> None:
    lines = _log_lines("text")[:2]
    assert lines[0].endswith(
        "INFO knowpay.jobs [-]: receipt sent to z***@example.com, mobile 138****5678"
    )
    assert lines[1].endswith("WARNING knowpay.jobs [req_4f2a]: inside a request")


def test_json_logs_are_one_object_per_line() -> None:
    records = [json.loads(line) for line in _log_lines("json")]
    assert [(r["level"], r["logger"], r["request_id"]) for r in records] == [
        ("INFO", "knowpay.jobs", "-"),
        ("WARNING", "knowpay.jobs", "req_4f2a"),
        ("ERROR", "knowpay.jobs", "-"),
    ]
    assert "l***@example.com" in records[2]["exc_info"]
    assert records[0]["message"] == "receipt sent to z***@example.com, mobile 138****5678"
    assert records[1]["time"].endswith("+00:00")


def test_serve_prints_knowpays_info_records(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # On SQLite the worker loops run inside `serve`; their start is an INFO record.
    with running_server(settings, workers=1, log=log, in_process_worker=True):
        pass
    assert "INFO knowpay.worker [-]: worker started" in log.read_text()


def test_serve_in_json_prints_every_line_as_json(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    json_logs = {"KNOWPAY_LOG_FORMAT": "json"}
    with running_server(
        settings, workers=1, log=log, in_process_worker=True, extra_env=json_logs
    ) as base_url:
        answer = httpx.get(f"{base_url}/healthz", headers={"X-Request-Id": "req_probe_7"})
        assert answer.status_code == 200
    records = [json.loads(line) for line in log.read_text().splitlines()]
    loggers = {record["logger"] for record in records}
    assert {"knowpay.worker", "uvicorn.error", "uvicorn.access"} <= loggers, loggers
    assert all("color_message" not in record for record in records)
    # uvicorn logs the access line while the response starts, inside the request.
    health_checks = [r for r in records if "GET /healthz" in r["message"]]
    assert [r["request_id"] for r in health_checks] == ["req_probe_7"]


def test_the_log_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWPAY_LOG_LEVEL", "warning")
    assert Settings().log_level == "WARNING"
    monkeypatch.setenv("KNOWPAY_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="KNOWPAY_LOG_LEVEL"):
        Settings()
    monkeypatch.setenv("KNOWPAY_LOG_LEVEL", "info")
    monkeypatch.setenv("KNOWPAY_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()


def test_knowpay_worker_in_json_prints_every_line_as_json(tmp_path: Path) -> None:
    """Found by an operations audit: `knowpay worker` printed its start as plain text."""
    env = {
        **os.environ,
        "KNOWPAY_DATABASE_URL": f"sqlite:///{tmp_path}/worker.db",
        "KNOWPAY_LOG_FORMAT": "json",
        "KNOWPAY_WORKER__JOBS_INTERVAL_S": "3600",
    }
    knowpay = [sys.executable, "-m", "knowpay.cli.main"]
    subprocess.run([*knowpay, "migrate"], env=env, cwd=tmp_path, check=True, timeout=60)
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        worker = subprocess.Popen(
            [*knowpay, "worker"], env=env, cwd=tmp_path, stdout=stdout, stderr=stderr
        )
        try:
            deadline = time.monotonic() + 30
            while "worker running" not in err.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    lines = [line for path in (out, err) for line in path.read_text().splitlines() if line]
    records = [json.loads(line) for line in lines]
    messages = [record["message"] for record in records]
    assert any("worker running" in message for message in messages), messages
