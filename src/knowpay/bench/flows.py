"""The paid flow as a platform and a buyer drive it, over HTTP: create an order (with an
Idempotency-Key) → create a payment → the buyer pays at the gateway (the simulator then
sends its signed notification to knowpay) → the order shows paid → the buyer's entitlement
is there.

A `Platform` keeps every call's latency per endpoint. With `patient=True` (the chaos test)
each call is retried with the same Idempotency-Key through connection errors, 5xx and
"in progress" answers, as a careful client does while servers die and come back."""

from __future__ import annotations

import asyncio
import json as json_module
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx

CHANNEL_GATEWAY = {"alipay_qr": "alipay", "wechat_native": "wechatpay"}
PATIENT_TRIES = 600
"""How often a patient client tries one call (the waits grow to 1 s: about ten minutes)."""


class FlowError(Exception):
    """A step answered what a correct knowpay never answers."""


@dataclass
class Latencies:
    """Milliseconds per endpoint, for the requests that started inside the window."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    recording: bool = False

    def add(self, endpoint: str, elapsed_ms: float) -> None:
        if self.recording:
            self.samples[endpoint].append(elapsed_ms)


@dataclass
class Catalog:
    api_key: str
    user_ids: list[str]
    product_ids: list[str]


@dataclass
class FlowResult:
    order_id: str
    payment_id: str
    channel: str


class Platform:
    """One platform's server calling knowpay, and its buyers paying at the simulators."""

    def __init__(
        self,
        api_url: str,
        sandbox_url: str,
        catalog: Catalog,
        *,
        concurrency: int,
        patient: bool = False,
        poll_s: float = 0.1,
        paid_within_s: float = 60.0,
        payer_idle_s: float = 2.0,
    ) -> None:
        self.api_url = api_url
        self.sandbox_url = sandbox_url
        self.concurrency = concurrency
        self.payer_idle_s = payer_idle_s
        self._api: aiohttp.ClientSession | None = None
        self._payer: aiohttp.ClientSession | None = None
        # The control side (faults, notification logs) is rare: httpx, as elsewhere.
        self.gateways = httpx.AsyncClient(
            base_url=sandbox_url,
            timeout=30,
            limits=httpx.Limits(max_connections=8, keepalive_expiry=2.0),  # under uvicorn's 5 s
            trust_env=False,
        )
        self.catalog = catalog
        self.latencies = Latencies()
        self.errors: list[str] = []
        self.patient = patient
        self.poll_s = poll_s
        self.paid_within_s = paid_within_s
        self.retries = 0
        self.connection_resends = 0

    def _session(
        self, base_url: str, idle_s: float, headers: dict[str, str]
    ) -> aiohttp.ClientSession:
        """A client as light as the load allows: aiohttp spends about a tenth of a
        millisecond of CPU per request here, where httpx's async client spent about two,
        and the load generator shares the two cores with what it measures. Idle
        connections are dropped after `idle_s`: a server closes one idle for its keep-alive
        timeout (the simulators' uvicorn: 5 s; knowpay: `KNOWPAY_KEEP_ALIVE_S`, 75 s), and
        a request sent on it at that moment is lost."""
        connector = aiohttp.TCPConnector(limit=self.concurrency * 2, keepalive_timeout=idle_s)
        return aiohttp.ClientSession(
            base_url=base_url,
            headers=headers,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=30),
            trust_env=False,
        )

    @property
    def api(self) -> aiohttp.ClientSession:
        if self._api is None:  # made on first use: aiohttp wants a running event loop
            bearer = {"Authorization": f"Bearer {self.catalog.api_key}"}
            self._api = self._session(self.api_url, 2.0, bearer)
        return self._api

    @property
    def payer(self) -> aiohttp.ClientSession:
        if self._payer is None:
            self._payer = self._session(self.sandbox_url, self.payer_idle_s, {})
        return self._payer

    async def aclose(self) -> None:
        for session in (self._api, self._payer):
            if session is not None:
                await session.close()
        await self.gateways.aclose()

    # -- one flow ----------------------------------------------------------------------

    async def paid_flow(self, channel: str, *, pay: bool = True, wait: bool = True) -> FlowResult:
        user_id = random.choice(self.catalog.user_ids)
        product_id = random.choice(self.catalog.product_ids)
        order = await self.call(
            "POST /v1/orders",
            "POST",
            "/v1/orders",
            json={
                "user_id": user_id,
                "items": [{"product_id": product_id, "quantity": 1}],
                "currency": "CNY",
            },
            idempotent=True,
            expect=201,
        )
        payment = await self.call(
            "POST /v1/orders/{id}/payments",
            "POST",
            f"/v1/orders/{order['id']}/payments",
            json={"channel": channel},
            idempotent=True,
            expect=201,
        )
        if payment["status"] != "pending" or not (payment.get("action") or {}).get("code_url"):
            raise FlowError(f"payment {payment['id']} came back {payment}")
        result = FlowResult(order["id"], payment["id"], channel)
        if pay:
            await self.pay_at_gateway(channel, payment["id"])
        if pay and wait:
            await self.wait_paid(order["id"])
            await self.check_entitlement(user_id, product_id)
        return result

    async def pay_at_gateway(self, channel: str, out_trade_no: str) -> None:
        """The buyer scans the QR code and pays: the simulator records the trade as paid and
        notifies knowpay (signed) on its own schedule."""
        if CHANNEL_GATEWAY[channel] == "alipay":
            paying = self.payer.post("/alipay/_pay", json={"out_trade_no": out_trade_no})
        else:
            paying = self.payer.post(f"/wechatpay/_trades/{out_trade_no}/pay")
        async with paying as response:
            if response.status != 200:
                raise FlowError(f"paying {out_trade_no} at the simulator: {await response.text()}")

    async def wait_paid(self, order_id: str) -> None:
        deadline = time.monotonic() + self.paid_within_s
        while True:
            order = await self.call("GET /v1/orders/{id}", "GET", f"/v1/orders/{order_id}")
            if order["status"] == "paid":
                return
            if time.monotonic() > deadline:
                raise FlowError(f"order {order_id} not paid within {self.paid_within_s} s")
            await asyncio.sleep(self.poll_s)

    async def check_entitlement(self, user_id: str, product_id: str) -> None:
        """The buyer may now open the course (a repeat purchase keeps the first grant)."""
        page = await self.call(
            "GET /v1/entitlements",
            "GET",
            "/v1/entitlements",
            params={"user_id": user_id, "limit": "100"},
        )
        if not any(e["product_id"] == product_id and e["revoked_at"] is None for e in page["data"]):
            raise FlowError(f"{user_id} has no entitlement to {product_id} after paying")

    # -- one call ------------------------------------------------------------------------

    async def call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool = False,
        expect: int = 200,
    ) -> Any:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if idempotent else {}
        resendable = idempotent or method == "GET"
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                async with self.api.request(
                    method, path, json=json, params=params, headers=headers
                ) as response:
                    status, text = response.status, await response.text()
            except (aiohttp.ClientError, TimeoutError) as error:
                if not self.patient:
                    if attempt == 0 and resendable and _stale_connection(error):
                        # The server closed an idle kept-alive connection as this request
                        # left on it: resending is safe (a GET, or the same Idempotency-Key),
                        # as any HTTP client does; counted apart, never hidden.
                        self.connection_resends += 1
                        attempt += 1
                        continue
                    raise FlowError(f"{endpoint}: {type(error).__name__}: {error}") from error
            else:
                self.latencies.add(endpoint, (time.perf_counter() - started) * 1000)
                if status == expect:
                    return json_module.loads(text)
                if not (self.patient and _worth_retrying(status, text)):
                    raise FlowError(f"{endpoint} answered {status}: {text[:300]}")
            attempt += 1
            if attempt >= PATIENT_TRIES:
                raise FlowError(f"{endpoint}: gave up after {attempt} tries")
            self.retries += 1
            await asyncio.sleep(min(0.05 * attempt, 1.0))


def _stale_connection(error: Exception) -> bool:
    """The peer closed the connection before answering (uvicorn's keep-alive timeout race)."""
    if isinstance(error, aiohttp.ClientConnectorError):  # refused: nothing was sent
        return False
    return isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


def _worth_retrying(status: int, text: str) -> bool:
    """A server died under the request, a gateway failed, or another try holds the key."""
    if status >= 500 or status == 429:
        return True
    return status == 409 and "idempotency" in text


async def make_catalog(
    api_url: str, api_key: str, *, buyers: int, products: int, concurrency: int = 8
) -> Catalog:
    """Buyers and courses the flows pick from at random, created through the API."""
    async with httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
        trust_env=False,
    ) as client:
        gate = asyncio.Semaphore(concurrency)
        run = uuid.uuid4().hex[:8]

        async def post(path: str, body: dict[str, Any]) -> str:
            async with gate:
                response = await client.post(path, json=body)
            if response.status_code != 201:
                raise FlowError(f"{path} answered {response.status_code}: {response.text}")
            return str(response.json()["id"])

        user_ids = await asyncio.gather(
            *(
                post(
                    "/v1/users",
                    {"email": f"buyer{n}.{run}@bench.knowpay.local", "password": f"pw-{run}-{n}!"},
                )
                for n in range(buyers)
            )
        )
        product_ids = await asyncio.gather(
            *(
                post(
                    "/v1/products",
                    {
                        "title": f"基准课程 {n}",
                        "kind": "course",
                        "prices": [{"amount": 100 + n, "currency": "CNY"}],
                    },
                )
                for n in range(products)
            )
        )
    return Catalog(api_key, list(user_ids), list(product_ids))
