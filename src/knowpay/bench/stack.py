"""A whole knowpay deployment on 127.0.0.1, each part its own process: the gateway
simulators (`knowpay sandbox`), the API (`knowpay serve --workers N`) and the worker
(`knowpay worker`), on a PostgreSQL database made for the run and dropped afterwards.

The benchmark and the chaos test drive it from outside, over HTTP and the command line,
exactly as a platform and the gateways would. Each process runs in a session of its own,
so killing one (SIGKILL included) takes its uvicorn children with it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    ready: Callable[[], bool], *, timeout_s: float, what: str, poll_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(poll_s)
    raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")


def answers_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


ProcessPick = Callable[[int, int, str], bool]
"""(pid, process group, command) → whether the process counts."""


def cpu_seconds_by_pid(member: ProcessPick) -> dict[int, float]:
    """User + system CPU seconds of each process `member` picks, read from /proc (Linux);
    empty where /proc is missing."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    found: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # After the command: state ppid pgrp … utime (field 14 of stat) stime (15).
        pid = int(stat.parent.name)
        if member(pid, int(fields[2]), comm):
            found[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def group_cpu_seconds(member: ProcessPick) -> float:
    """Sum of user + system CPU seconds of the live processes `member` picks."""
    return sum(cpu_seconds_by_pid(member).values())


class CpuWatch:
    """CPU seconds spent by the processes `member` picks while the block runs, those that
    start and end inside it included (sampled every `every_s`: a process that exits loses at
    most its last interval, e.g. pgbench's connections as it disconnects)."""

    def __init__(self, member: ProcessPick, every_s: float = 0.2) -> None:
        self._member, self._every_s = member, every_s
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> CpuWatch:
        self._first = cpu_seconds_by_pid(self._member)  # a pid first seen later started at 0
        self._last = dict(self._first)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(cpu - self._first.get(pid, 0.0) for pid, cpu in self._last.items())

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def _sample(self) -> None:
        self._last.update(cpu_seconds_by_pid(self._member))


POSTGRES_SHARED_PROCESSES = (
    "checkpointer",
    "background writer",
    "walwriter",
    "wal writer",
    "autovacuum launcher",
    "logical replication launcher",
    "stats collector",
    "archiver",
)
"""Server-wide PostgreSQL processes (their titles): they write for every database."""


def postgres_serving(database: str) -> ProcessPick:
    """Picks the local PostgreSQL server's processes working for `database`: its backends and
    autovacuum workers, the postmaster and the server-wide writers (none where the server
    runs elsewhere). Another database's backends (a test run beside the bench) are left out."""

    def serves(pid: int, _pgid: int, comm: str) -> bool:
        if comm != "postgres":
            return False
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            return False
        if not title.startswith("postgres: "):
            # The postmaster (it forks every connection), not a child forked a moment ago
            # that has yet to take its title: it might be another database's backend.
            return not _child_of_postgres(pid)
        # "postgres: [cluster name: ]postgres knowpay_bench_1a2b 127.0.0.1(5432) idle"
        role = title.removeprefix("postgres: ")
        parts = role.split(": ")
        return database in role.split() or parts[-1].startswith(POSTGRES_SHARED_PROCESSES)

    return serves


def _child_of_postgres(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        parent = int(raw[raw.rindex(")") + 2 :].split()[1])
        stat = Path(f"/proc/{parent}/stat").read_text()
    except (OSError, ValueError, IndexError):
        return False
    return stat[stat.index("(") + 1 : stat.rindex(")")] == "postgres"


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores (Linux's /proc/stat); 0.0 elsewhere."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    # cpu  user nice system idle iowait irq softirq steal …: all but idle and iowait.
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (user + nice + system + irq + softirq + steal) / ticks


def read_simulator_keys(sandbox_url: str) -> dict[str, dict[str, Any]]:
    """What the simulators publish at /_keys, for the gateways a run points knowpay at."""
    return {
        gateway: httpx.get(f"{sandbox_url}/{gateway}/_keys", trust_env=False).json()
        for gateway in ("alipay", "wechatpay")
    }


def simulated_gateways_env(keys: dict[str, dict[str, Any]], sandbox_url: str) -> dict[str, str]:
    """knowpay's Alipay and WeChat Pay settings pointed at the simulators, with their keys."""
    alipay, wechat = keys["alipay"], keys["wechatpay"]
    return {
        "KNOWPAY_ALIPAY__APP_ID": alipay["app_id"],
        "KNOWPAY_ALIPAY__SELLER_ID": alipay["seller_id"],
        "KNOWPAY_ALIPAY__GATEWAY_URL": alipay["gateway_url"],
        "KNOWPAY_ALIPAY__PRIVATE_KEY": alipay["merchant_private_key"],
        "KNOWPAY_ALIPAY__ALIPAY_PUBLIC_KEY": alipay["alipay_public_key"],
        "KNOWPAY_WECHATPAY__MCHID": wechat["mchid"],
        "KNOWPAY_WECHATPAY__APPID": wechat["appid"],
        "KNOWPAY_WECHATPAY__APIV3_KEY": wechat["apiv3_key"],
        "KNOWPAY_WECHATPAY__MERCHANT_PRIVATE_KEY": wechat["merchant_private_key"],
        "KNOWPAY_WECHATPAY__MERCHANT_SERIAL_NO": wechat["merchant_serial_no"],
        "KNOWPAY_WECHATPAY__PLATFORM_PUBLIC_KEY": wechat["platform_public_key"],
        "KNOWPAY_WECHATPAY__PLATFORM_SERIAL_NO": wechat["platform_serial_no"],
        "KNOWPAY_WECHATPAY__BASE_URL": sandbox_url + "/wechatpay",
    }


def run_cli(env: dict[str, str], *args: str) -> Any:
    """`knowpay <args> --json` in `env`; its JSON answer (exit 1 is an answer too, e.g. a
    failed ledger check)."""
    completed = subprocess.run(
        [sys.executable, "-m", "knowpay.cli.main", *args, "--json"],
        env=env,
        capture_output=True,
        check=False,
    )
    if completed.returncode not in (0, 1):
        raise RuntimeError(f"knowpay {' '.join(args)} failed: {completed.stderr.decode()}")
    return json.loads(completed.stdout)


@dataclass
class StackOptions:
    server_url: str = DEFAULT_SERVER_URL
    """A PostgreSQL database on the server to use; the run's own database is made beside it."""
    api_workers: int = 2
    time_scale: float = 0.001
    """The simulators' notification retry schedules, scaled (Alipay's 4 min becomes 0.24 s)."""
    log_dir: Path = field(default_factory=lambda: Path("var/bench"))
    env: dict[str, str] = field(default_factory=dict)
    """Extra KNOWPAY_* settings for the API and the worker."""


class Process:
    """One part of the stack: started, killed (SIGKILL) and started again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self._argv, self._env, self._log = name, argv, env, log
        self._popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self._log.open("ab") as output:
            output.write(f"\n=== start {self.starts} of {self.name} ===\n".encode())
            output.flush()
            self._popen = subprocess.Popen(
                self._argv,
                env=self._env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hooks, no goodbyes."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever is left after 15 s."""
        if self._popen is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
        self._popen = None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the process group's live members."""
        if self._popen is None:
            return 0.0
        leader = self._popen.pid
        return group_cpu_seconds(lambda _pid, pgid, _comm: pgid == leader)

    def _signal(self, signum: int) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)
        if signum == signal.SIGKILL:
            self._popen.wait()


class Stack:
    """Start with `with Stack(options) as stack:`; everything stops and the database goes
    when the block ends."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        options.log_dir.mkdir(parents=True, exist_ok=True)
        self.database_name = f"knowpay_bench_{secrets.token_hex(4)}"
        self.database_url = make_url(options.server_url).set(database=self.database_name)
        self.sandbox_url = f"http://127.0.0.1:{free_port()}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self.sandbox_keys: dict[str, dict[str, Any]] = {}
        self.engine: Engine | None = None
        self._processes: list[Process] = []
        self.sandbox = self._process(
            "sandbox",
            [
                "sandbox",
                "--port",
                self.sandbox_url.rsplit(":", 1)[1],
                "--time-scale",
                str(options.time_scale),
            ],
            {},
        )
        self.api: Process | None = None
        self.worker: Process | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self._create_database()
            self.sandbox.start()
            wait_until(
                answers_ok(self.sandbox_url + "/healthz"), timeout_s=60, what="sandbox ready"
            )
            self.sandbox_keys = read_simulator_keys(self.sandbox_url)
            self.cli("migrate")
            self.api = self._process(
                "api",
                [
                    "serve",
                    "--port",
                    self.api_url.rsplit(":", 1)[1],
                    "--workers",
                    str(self.options.api_workers),
                ],
                self.knowpay_env(),
            )
            self.worker = self._process("worker", ["worker"], self.knowpay_env())
            self.start_api()
            self.worker.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        if self.engine is not None:
            self.engine.dispose()
        self._drop_database()

    def start_api(self) -> None:
        assert self.api is not None
        self.api.start()
        wait_until(answers_ok(self.api_url + "/readyz"), timeout_s=120, what="knowpay ready")

    # -- the database ------------------------------------------------------------------

    def _admin(self) -> Engine:
        return create_engine(self.options.server_url, isolation_level="AUTOCOMMIT")

    def _create_database(self) -> None:
        admin = self._admin()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.database_name}"'))
        admin.dispose()
        self.engine = create_engine(self.database_url)

    def _drop_database(self) -> None:
        admin = self._admin()
        try:
            with admin.connect() as connection:
                connection.execute(
                    text(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
                )
        finally:
            admin.dispose()

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value read straight from the run's database (an observer's view)."""
        assert self.engine is not None
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        assert self.engine is not None
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    # -- knowpay's configuration and command line -------------------------------------

    def knowpay_env(self) -> dict[str, str]:
        """The environment every knowpay process of the run gets: its database, its public
        URL, both gateways pointed at the simulators with the keys they published."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWPAY_")}
        env.update(
            {
                "KNOWPAY_DATABASE_URL": self.database_url.render_as_string(hide_password=False),
                "KNOWPAY_PUBLIC_URL": self.api_url,
                "KNOWPAY_SECRET_KEY": "bench-" + "k" * 40,
                "KNOWPAY_WORKER__IN_PROCESS": "false",
                **simulated_gateways_env(self.sandbox_keys, self.sandbox_url),
            }
        )
        env.update(self.options.env)
        return env

    def cli(self, *args: str) -> Any:
        """`knowpay <args> --json` against the run's database; its JSON answer."""
        return run_cli(self.knowpay_env(), *args)

    def _process(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        argv = [sys.executable, "-m", "knowpay.cli.main", *args]
        process = Process(name, argv, env or dict(os.environ), self.options.log_dir / f"{name}.log")
        self._processes.append(process)
        return process
