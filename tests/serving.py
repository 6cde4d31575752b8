"""Run knowpay as a real server process (`knowpay serve`) for tests that need several
processes and real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from knowpay.kit.config import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(settings: Settings) -> dict[str, str]:
    """The environment that points a server process at the test's database and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWPAY_")}
    env.update(
        {
            "KNOWPAY_DATABASE_URL": settings.database_url,
            "KNOWPAY_SECRET_KEY": settings.secret_key.get_secret_value(),
            "KNOWPAY_PASSWORD_HASH__TIME_COST": str(settings.password_hash.time_cost),
            "KNOWPAY_PASSWORD_HASH__MEMORY_COST_KIB": str(settings.password_hash.memory_cost_kib),
            "KNOWPAY_PASSWORD_HASH__PARALLELISM": str(settings.password_hash.parallelism),
        }
    )
    limits = settings.rate_limits
    env.update(
        {
            f"KNOWPAY_RATE_LIMITS__{name.upper()}": str(getattr(limits, name))
            for name in (
                "enabled",
                "api_per_key",
                "api_per_person",
                "api_per_ip",
                "login_per_ip",
                "login_per_account",
                "payment_password",
                "key_prefix",
            )
        }
    )
    return env


@contextmanager
def running_server(
    settings: Settings,
    *,
    workers: int = 2,
    log: Path | None = None,
    in_process_worker: bool | None = False,
    extra_env: dict[str, str] | None = None,
    ready_within_s: float = 120,
) -> Iterator[str]:
    """`knowpay serve --workers N` on a free port; yields its base URL, stops it afterwards.
    The worker loops stay off unless asked for (None: knowpay's own default)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = server_environment(settings) | {"KNOWPAY_PUBLIC_URL": base_url} | (extra_env or {})
    if in_process_worker is not None:
        env["KNOWPAY_WORKER__IN_PROCESS"] = str(in_process_worker).lower()
    output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "knowpay.cli.main",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_ready(base_url, process, ready_within_s)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            output.close()  # type: ignore[union-attr]


def _wait_until_ready(
    base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"knowpay serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"knowpay did not become ready at {base_url}")
