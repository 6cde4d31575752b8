"""The chaos test's moving parts: the paid flows (bounded concurrency that a stalled flow
cannot block), the killer (SIGKILL and restart of the API and the worker at random
moments), the simulators' fault injection, a webhook receiver that checks signatures, and
what the simulators themselves say was paid."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from knowpay.bench.flows import CHANNEL_GATEWAY, Catalog, FlowError, FlowResult, Platform
from knowpay.bench.run import BENCH_ENV
from knowpay.bench.stack import Stack
from knowpay.webhooks.signing import SIGNATURE_HEADER, verify_signature
from tests.webhooks.receiver import Received, Receiver, receiver

CRASH_RUN_ENV = {
    **BENCH_ENV,
    # The compensation jobs on a test's time scale: a payment 5 s without news is asked
    # about, and the jobs run every second. (Asked before the buyer has paid, a payment is
    # asked again only 30 s later: knowpay's query backoff. 5 s leaves a loaded machine
    # time to finish the flow's payment first.)
    "KNOWPAY_WORKER__QUERY_AFTER_S": "5",
    "KNOWPAY_WORKER__JOBS_INTERVAL_S": "1",
    "KNOWPAY_WORKER__IDLE_WAIT_S": "0.1",
    # The buyers are created, never logged in: cheap password hashing.
    "KNOWPAY_PASSWORD_HASH__TIME_COST": "1",
    "KNOWPAY_PASSWORD_HASH__MEMORY_COST_KIB": "64",
    "KNOWPAY_PASSWORD_HASH__PARALLELISM": "1",
}
"""What every crash run sets on top of the benchmark's environment."""

# -- the flows ------------------------------------------------------------------------------

IDLE_CONNECTION_S = 1.0
"""How long an idle connection to the simulators is kept. Their server (uvicorn) closes one
idle for 5 s, httpx's default too: a client that has been waiting (while knowpay was down)
could send on a connection just as the server closes it, and lose that request."""


def simulator_client(sandbox_url: str, *, connections: int = 64) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=IDLE_CONNECTION_S,
    )
    return httpx.AsyncClient(base_url=sandbox_url, timeout=30, limits=limits, trust_env=False)


def patient_platform(
    api_url: str, sandbox_url: str, catalog: Catalog, *, concurrency: int
) -> Platform:
    """The platform of a crash run: it retries every call through kills and 5xx, and its
    buyers pay at the gateway on a connection that never outlives the server's idea of idle
    (paying is the one call of a flow it does not retry)."""
    return Platform(
        api_url,
        sandbox_url,
        catalog,
        concurrency=concurrency,
        patient=True,
        payer_idle_s=IDLE_CONNECTION_S,
    )


@dataclass
class FlowLog:
    """How far the flows are, and what each one ended with."""

    total: int
    started: int = 0
    finished: int = 0
    stragglers: int = 0
    """Flows that outlived their slot (a request died with its process, and its
    Idempotency-Key stays locked for a minute): they finish outside the concurrency bound."""
    results: list[FlowResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def run_flows(
    platform: Platform,
    log: FlowLog,
    channels: tuple[str, ...],
    *,
    concurrency: int,
    slot_s: float,
) -> None:
    """`log.total` paid flows (pay at the simulator, do not wait for knowpay), at most
    `concurrency` at once. A flow holding its slot longer than `slot_s` gives the slot up and
    goes on retrying outside it, so one kill cannot stall the whole run for a minute."""
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> None:
        async with gate:
            log.started += 1
            channel = channels[number % len(channels)]
            task = asyncio.create_task(platform.paid_flow(channel, pay=True, wait=False))
            done, _ = await asyncio.wait({task}, timeout=slot_s)
            log.stragglers += not done
        try:
            log.results.append(await task)
        except FlowError as error:
            log.errors.append(str(error))
        except Exception as error:  # the run goes on; the test reports every failed flow
            log.errors.append(f"{type(error).__name__}: {error}")
        finally:
            log.finished += 1

    await asyncio.gather(*(one(n) for n in range(log.total)))


# -- the killer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    target: str
    at_s: float
    """Seconds after the killer started."""
    flows_finished: int
    down_s: float
    """From the SIGKILL until the process was started again (the API: and ready)."""


class Killer:
    """SIGKILLs the API and the worker in turn (whole process groups) at random moments
    while the flows run, and starts each again after a short random pause."""

    def __init__(
        self, stack: Stack, kills: int, log: FlowLog, rng: random.Random, *, spread: float = 0.6
    ) -> None:
        self._stack, self._wanted, self._log, self._rng = stack, kills, log, rng
        self._spread = spread
        self.kills: list[Kill] = []
        self._began = time.monotonic()

    async def run(self) -> None:
        # Random points in the flows' progress (flows finished), so every kill lands while
        # flows are running.
        points = sorted(self._rng.uniform(0.05, self._spread) for _ in range(self._wanted))
        first = self._rng.choice(("api", "worker"))
        second = "worker" if first == "api" else "api"
        self._began = time.monotonic()
        for number, point in enumerate(points):
            while self._log.finished < point * self._log.total:
                await asyncio.sleep(0.02)
            await asyncio.sleep(self._rng.uniform(0.0, 0.4))
            target = first if number % 2 == 0 else second
            await asyncio.to_thread(self._kill_and_restart, target)

    def _kill_and_restart(self, target: str) -> None:
        process = self._stack.api if target == "api" else self._stack.worker
        assert process is not None
        finished = self._log.finished
        killed_at = time.monotonic()
        process.kill()
        time.sleep(self._rng.uniform(0.2, 1.0))
        if target == "api":
            self._stack.start_api()  # waits for /readyz
        else:
            process.start()
        self.kills.append(
            Kill(target, killed_at - self._began, finished, time.monotonic() - killed_at)
        )


# -- fault injection ------------------------------------------------------------------------

# Each WeChat Pay fault (the simulator has one global set; a POST replaces it) held for a
# while, in turn, until the window ends. A delay longer than knowpay's WeChat Pay timeout
# (KNOWPAY_WECHATPAY__TIMEOUT_S) is a timeout from knowpay's side.
WECHAT_CYCLE: tuple[tuple[dict[str, Any], float], ...] = (
    ({"lose_notification": True}, 1.0),
    ({"duplicate": 3}, 1.0),
    ({"api_status": 500}, 0.6),
    ({}, 0.3),
    ({"api_delay_s": 3.0}, 0.3),
    ({}, 0.3),
)
FIRED_WITHIN_S = 30.0
"""How long a window may be stretched until each of its faults has fired at least once."""


def alipay_api_faults(flows: int, *, timeout_s: float) -> list[dict[str, Any]]:
    """Alipay's API faults for the window, each limited by `times` so that it ends by itself.
    They hit trade creation only: a failed creation is the client's to retry, while a failed
    query would wait out knowpay's 30 s query backoff."""
    create = ["alipay.trade.precreate"]
    return [
        {"kind": "http_5xx", "status": 503, "methods": create, "times": max(5, flows // 50)},
        {"kind": "timeout", "seconds": timeout_s, "methods": create, "times": max(2, flows // 100)},
    ]


def alipay_notification_faults(flows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Lost, then duplicated notifications: one after the other, since a notification takes
    every notification fault in force and a lost one is never sent, duplicated or not."""
    times = max(5, flows // 50)
    return {"kind": "lost", "times": times}, {"kind": "duplicate", "count": 3, "times": times}


async def _until(fired: Callable[[], Awaitable[bool]], timeout_s: float = FIRED_WITHIN_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await fired() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


class FaultInjector:
    """Turns the simulators' faults on for a window of the run and off again. A window ends
    only once each of its faults has fired (or FIRED_WITHIN_S later): the run must not pass
    because the faults happened to miss it. `wechat_api_failed` tells whether WeChat Pay's
    API has answered an injected 500 yet (the simulator counts nothing of its API faults)."""

    def __init__(
        self,
        sandbox: httpx.AsyncClient,
        flows: int,
        *,
        alipay_timeout_s: float,
        wechat_api_failed: Callable[[], bool],
    ) -> None:
        self._sandbox = sandbox
        self._api = alipay_api_faults(flows, timeout_s=alipay_timeout_s)
        self._lost, self._duplicate = alipay_notification_faults(flows)
        self._lost_id = ""
        self._wechat_api_failed = wechat_api_failed
        self._cycle: asyncio.Task[None] | None = None
        self.wechat_windows: Counter[str] = Counter()
        self.alipay_fired: Counter[str] = Counter()

    async def start(self) -> None:
        for fault in [*self._api, self._lost]:
            response = await self._sandbox.post("/alipay/_faults", json=fault)
            response.raise_for_status()
        self._lost_id = response.json()["id"]
        self._cycle = asyncio.create_task(self._wechat_cycle())

    async def halfway(self) -> None:
        """Alipay stops losing notifications and starts duplicating them."""
        await _until(self._alipay_all_fired)
        self._count_fired(await self._alipay_faults(), only=self._lost_id)
        (await self._sandbox.delete(f"/alipay/_faults/{self._lost_id}")).raise_for_status()
        (await self._sandbox.post("/alipay/_faults", json=self._duplicate)).raise_for_status()

    async def _wechat_cycle(self) -> None:
        while True:
            for faults, hold_s in WECHAT_CYCLE:
                (await self._sandbox.post("/wechatpay/_faults", json=faults)).raise_for_status()
                self.wechat_windows[",".join(sorted(faults)) or "none"] += 1
                await asyncio.sleep(hold_s)

    async def stop(self) -> None:
        """Remove every fault (once each has fired); keep how often Alipay's fired."""
        try:
            await _until(self._alipay_all_fired)
            await _until(self._wechat_all_fired)
        finally:
            if self._cycle is not None:
                self._cycle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._cycle
            self._count_fired(await self._alipay_faults())
            (await self._sandbox.delete("/alipay/_faults")).raise_for_status()
            (await self._sandbox.delete("/wechatpay/_faults")).raise_for_status()

    async def _alipay_faults(self) -> list[dict[str, Any]]:
        response = await self._sandbox.get("/alipay/_faults")
        response.raise_for_status()
        faults: list[dict[str, Any]] = response.json()
        return faults

    async def _alipay_all_fired(self) -> bool:
        return all(fault["fired"] > 0 for fault in await self._alipay_faults())

    async def _wechat_all_fired(self) -> bool:
        counts = await notification_counts(self._sandbox, "wechatpay")
        return counts.lost > 0 and counts.duplicated > 0 and self._wechat_api_failed()

    def _count_fired(self, faults: list[dict[str, Any]], only: str | None = None) -> None:
        for fault in faults:
            if only is None or fault["id"] == only:
                self.alipay_fired[fault["kind"]] += int(fault["fired"])


async def run_fault_window(injector: FaultInjector, log: FlowLog) -> None:
    """Faults on for the middle third of the run (by flows finished)."""
    await _until_finished(log, log.total // 3)
    await injector.start()
    try:
        await _until_finished(log, log.total // 2)
        await injector.halfway()
        await _until_finished(log, 2 * log.total // 3)
    finally:
        await injector.stop()


async def _until_finished(log: FlowLog, flows: int) -> None:
    while log.finished < flows:
        await asyncio.sleep(0.02)


# -- the simulators' records ----------------------------------------------------------------


@dataclass
class NotificationCounts:
    deliveries: int = 0
    lost: int = 0
    duplicated: int = 0
    """Deliveries whose first try went out as several concurrent copies."""
    retried: int = 0
    """Deliveries that needed more than one try (knowpay down or slow)."""


async def notification_counts(sandbox: httpx.AsyncClient, gateway: str) -> NotificationCounts:
    found = (await sandbox.get(f"/{gateway}/_notifications")).json()
    counts = NotificationCounts(deliveries=len(found))
    copies_key = "answers" if gateway == "alipay" else "replies"
    for delivery in found:
        attempts = delivery["attempts"]
        counts.lost += bool(delivery["lost"])
        counts.duplicated += bool(attempts) and len(attempts[0][copies_key]) > 1
        counts.retried += len(attempts) > 1
    return counts


async def paid_at_simulator(
    sandbox: httpx.AsyncClient, payments: list[tuple[str, str]], *, concurrency: int = 16
) -> set[str]:
    """The payment ids (out_trade_no) whose trade the simulator records as paid; a trade it
    never opened is not paid. `payments` are (payment id, channel)."""
    gate = asyncio.Semaphore(concurrency)

    async def paid(payment_id: str, channel: str) -> bool:
        gateway = CHANNEL_GATEWAY[channel]
        async with gate:
            response = await sandbox.get(f"/{gateway}/_trades/{payment_id}")
        if response.status_code == 404:
            return False
        response.raise_for_status()
        trade = response.json()
        if gateway == "alipay":
            return trade["paid_at"] is not None
        return trade.get("success_time") is not None

    answers = await asyncio.gather(*(paid(p, c) for p, c in payments))
    return {payment_id for (payment_id, _), yes in zip(payments, answers, strict=True) if yes}


# -- the platform's webhook receiver --------------------------------------------------------


@dataclass
class WebhookReceiver:
    """The platform's endpoint (tests/webhooks/receiver.py's server, answering 200): what
    arrived, judged by its signature; the orders of genuine `order.paid` events."""

    inbox: Receiver
    secret: str = ""

    @property
    def url(self) -> str:
        return self.inbox.url

    @property
    def deliveries(self) -> int:
        with self.inbox.lock:
            return len(self.inbox.received)

    def _genuine(self) -> tuple[list[Received], int]:
        with self.inbox.lock:
            received = list(self.inbox.received)
        genuine = [
            r
            for r in received
            if self.secret
            and verify_signature(r.body, r.headers.get(SIGNATURE_HEADER.lower(), ""), self.secret)
        ]
        return genuine, len(received) - len(genuine)

    @property
    def bad_signatures(self) -> int:
        return self._genuine()[1]

    @property
    def paid_orders(self) -> Counter[str]:
        genuine, _ = self._genuine()
        return Counter(
            r.event["data"]["object"]["id"] for r in genuine if r.event["type"] == "order.paid"
        )

    def orders(self) -> set[str]:
        return set(self.paid_orders)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A receiver on a free port of 127.0.0.1 (set its secret once known)."""
    with receiver() as inbox:
        yield WebhookReceiver(inbox)


def wait_for(condition: Callable[[], bool], *, timeout_s: float, poll_s: float = 0.5) -> bool:
    """Whether `condition` came true within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
