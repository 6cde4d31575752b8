"""Channel health: every gateway call is timed and counted, and goes through its gateway's
circuit breaker (pybreaker), so that a degraded gateway is skipped instead of waited on.

The channels of one gateway share its breaker (they share its host and credentials): when
Alipay's gateway fails, alipay_page, alipay_wap and alipay_qr are all unavailable.
Breaker state lives in Redis when `KNOWPAY_REDIS_URL` is set, so every process sees the
same state; otherwise each process keeps its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

import pybreaker
from prometheus_client import Counter, Histogram

from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelDeclined, ChannelUnavailable
from knowpay.channels.types import (
    Bill,
    ChannelProfile,
    CreatePaymentRequest,
    CreatePaymentResult,
    Notification,
    NotificationAck,
    PaymentQueryResult,
    RefundRequest,
    RefundResult,
)
from knowpay.kit.config import ChannelHealthSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

BreakerState = Literal["closed", "open", "half_open"]
Outcome = Literal["ok", "declined", "error", "rejected"]

GATEWAY_CALLS = Counter(
    "knowpay_gateway_calls_total",
    "Gateway calls by channel, operation and outcome (ok, declined, error, rejected by breaker).",
    ["channel", "operation", "outcome"],
)
GATEWAY_LATENCY = Histogram(
    "knowpay_gateway_call_seconds",
    "Latency of gateway calls that reached the gateway.",
    ["channel", "operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class ChannelCircuitOpen(ChannelUnavailable):
    """The gateway's breaker is open: the call was not even tried."""

    def __init__(self, gateway: str, retry_after_s: int) -> None:
        super().__init__(f"the {gateway} gateway is failing; calls are paused")
        self.gateway = gateway
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class _Call:
    at: float
    outcome: Outcome
    seconds: float


@dataclass(frozen=True, slots=True)
class ChannelHealthView:
    """One channel's recent record and its breaker, as `GET /v1/admin/channels` shows it."""

    channel: str
    gateway: str
    breaker_state: BreakerState
    available: bool
    calls: int
    success_rate: float | None
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    opened_at: datetime | None
    retry_after_s: int


StateListener = Callable[[str, BreakerState, BreakerState], None]
"""Called with (gateway, old state, new state) when a breaker changes state."""


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, gateway: str, notify: StateListener) -> None:
        self._gateway = gateway
        self._notify = notify

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = _state_name(old_state.name if old_state else "closed")
        new = _state_name(new_state.name)
        if old == new:
            # Calls already under way when the breaker opened fail one after another, and
            # each opens it "again": the same outage, not a change to report.
            return
        logger.warning("gateway %s breaker: %s -> %s", self._gateway, old, new)
        try:
            self._notify(self._gateway, old, new)
        except Exception:  # an alert that cannot be written must not break the payment path
            logger.exception("breaker listener for %s failed", self._gateway)


def _state_name(name: str) -> BreakerState:
    return (
        "half_open" if name == pybreaker.STATE_HALF_OPEN else "open" if name == "open" else "closed"
    )


class ChannelHealth:
    """Breakers per gateway and a rolling record of calls per channel."""

    def __init__(
        self,
        settings: ChannelHealthSettings,
        *,
        redis_url: str | None = None,
        on_state_change: StateListener | None = None,
    ) -> None:
        self._settings = settings
        self._redis_url = redis_url
        self._on_state_change = on_state_change or (lambda gateway, old, new: None)
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._trials: dict[str, threading.Lock] = {}
        self._calls: dict[str, deque[_Call]] = {}
        self._lock = threading.Lock()

    def set_listener(self, listener: StateListener) -> None:
        """Who hears of breakers opening and closing (app start-up wires the alerts)."""
        self._on_state_change = listener

    def breaker(self, gateway: str) -> pybreaker.CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(gateway)
            if breaker is None:
                breaker = pybreaker.CircuitBreaker(
                    fail_max=self._settings.breaker_fail_max,
                    reset_timeout=self._settings.breaker_reset_timeout_s,
                    exclude=[ChannelDeclined],  # a decline is the gateway working
                    listeners=[_Listener(gateway, self._notify)],
                    state_storage=self._storage(gateway),
                    name=gateway,
                    throw_new_error_on_trip=False,
                )
                self._breakers[gateway] = breaker
                self._trials[gateway] = threading.Lock()
            return breaker

    def _notify(self, gateway: str, old: BreakerState, new: BreakerState) -> None:
        self._on_state_change(gateway, old, new)

    def _storage(self, gateway: str) -> pybreaker.CircuitBreakerStorage:
        if not self._redis_url:
            return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        import redis

        client = redis.Redis.from_url(self._redis_url, socket_timeout=1.0)
        return pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=f"knowpay:breaker:{gateway}"
        )

    # Calls ------------------------------------------------------------------------------

    def call(self, channel: str, gateway: str, operation: str, func: Callable[[], T]) -> T:
        """Run one gateway call through the gateway's breaker, timing and counting it."""
        breaker = self.breaker(gateway)
        # A breaker that is not closed lets one trial call at a time through this process;
        # the others are refused at once rather than sent to a gateway that may still hang.
        trial = self._trials[gateway] if breaker.current_state != pybreaker.STATE_CLOSED else None
        if trial is not None and not trial.acquire(blocking=False):
            # Half-open, or open past its timeout: "retry in 0 s" would invite a stampede.
            raise self._refused(channel, gateway, operation, at_least_s=1)
        started = time.perf_counter()
        try:
            # `calling()`, not `call()`: pybreaker's `call` holds the breaker's lock for the
            # whole call, so a process would make one call to a gateway at a time (a slow
            # gateway would queue every payment behind it). `calling` takes the lock only to
            # decide whether the call may go and to record how it went.
            with breaker.calling():
                result = func()
        except pybreaker.CircuitBreakerError as exc:
            raise self._refused(channel, gateway, operation) from exc
        except ChannelDeclined:
            self._record(channel, operation, "declined", time.perf_counter() - started)
            raise
        except Exception:
            self._record(channel, operation, "error", time.perf_counter() - started)
            raise
        finally:
            if trial is not None:
                trial.release()
        self._record(channel, operation, "ok", time.perf_counter() - started)
        return result

    def _refused(
        self, channel: str, gateway: str, operation: str, *, at_least_s: int = 0
    ) -> ChannelCircuitOpen:
        """Count a call the breaker kept from the gateway; the error that says when to retry."""
        self._record(channel, operation, "rejected", 0.0, reached=False)
        return ChannelCircuitOpen(gateway, max(at_least_s, self.retry_after_s(gateway)))

    def _record(
        self, channel: str, operation: str, outcome: Outcome, seconds: float, reached: bool = True
    ) -> None:
        GATEWAY_CALLS.labels(channel, operation, outcome).inc()
        if not reached:
            return
        GATEWAY_LATENCY.labels(channel, operation).observe(seconds)
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(channel, deque(maxlen=self._settings.window_max_calls))
            calls.append(_Call(now, outcome, seconds))

    # State ------------------------------------------------------------------------------

    def state(self, gateway: str) -> BreakerState:
        return _state_name(self.breaker(gateway).current_state)

    def retry_after_s(self, gateway: str) -> int:
        """Seconds until an open breaker lets a trial call through (0 when it would now)."""
        breaker = self.breaker(gateway)
        if breaker.current_state != pybreaker.STATE_OPEN:
            return 0
        opened_at = _opened_at(breaker)
        if opened_at is None:
            return 0
        reopens = opened_at + timedelta(seconds=breaker.reset_timeout)
        return max(0, int((reopens - datetime.now(UTC)).total_seconds() + 0.999))

    def is_available(self, gateway: str) -> bool:
        """False while the breaker is open and its timeout has not passed, and while this
        process's trial call is out; a half-open breaker (or an open one whose timeout
        passed) with no trial out lets the next call probe the gateway."""
        # retry_after_s makes the breaker (and its trial lock) on first use.
        return self.retry_after_s(gateway) == 0 and not self._trials[gateway].locked()

    def view(self, channel: str, gateway: str) -> ChannelHealthView:
        """The rolling record of a channel over the configured window."""
        horizon = time.monotonic() - self._settings.window_s
        with self._lock:
            recent = [c for c in self._calls.get(channel, ()) if c.at >= horizon]
        reached = [c for c in recent if c.outcome != "rejected"]
        ok = sum(1 for c in reached if c.outcome in ("ok", "declined"))
        latencies = sorted(c.seconds * 1000 for c in reached)
        breaker = self.breaker(gateway)
        retry_after = self.retry_after_s(gateway)
        return ChannelHealthView(
            channel=channel,
            gateway=gateway,
            breaker_state=self.state(gateway),
            available=self.is_available(gateway),
            calls=len(reached),
            success_rate=ok / len(reached) if reached else None,
            error_rate=(len(reached) - ok) / len(reached) if reached else None,
            latency_p50_ms=_percentile(latencies, 0.50),
            latency_p95_ms=_percentile(latencies, 0.95),
            opened_at=_opened_at(breaker) if self.state(gateway) != "closed" else None,
            retry_after_s=retry_after,
        )


def _opened_at(breaker: pybreaker.CircuitBreaker) -> datetime | None:
    storage: pybreaker.CircuitBreakerStorage = breaker._state_storage
    return storage.opened_at


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return round(sorted_values[index], 2)


class GuardedChannel:
    """A channel whose gateway calls go through its gateway's breaker and are measured;
    notification verification (no call to the gateway) passes straight through."""

    def __init__(self, inner: Channel, health: ChannelHealth) -> None:
        self.inner = inner
        self.name = inner.name
        self.gateway = inner.gateway
        self.profile: ChannelProfile = inner.profile
        self._health = health

    def _call(self, operation: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._health.call(self.name, self.gateway, operation, lambda: func(*args, **kwargs))

    def create_payment(self, request: CreatePaymentRequest) -> CreatePaymentResult:
        return self._call("create_payment", self.inner.create_payment, request)

    def query_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        return self._call(
            "query_payment",
            self.inner.query_payment,
            out_trade_no,
            gateway_trade_no=gateway_trade_no,
        )

    def close_payment(
        self, out_trade_no: str, *, gateway_trade_no: str | None = None
    ) -> PaymentQueryResult:
        return self._call(
            "close_payment",
            self.inner.close_payment,
            out_trade_no,
            gateway_trade_no=gateway_trade_no,
        )

    def refund(self, request: RefundRequest) -> RefundResult:
        return self._call("refund", self.inner.refund, request)

    def query_refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        *,
        gateway_trade_no: str | None = None,
        gateway_refund_no: str | None = None,
    ) -> RefundResult:
        return self._call(
            "query_refund",
            self.inner.query_refund,
            out_trade_no,
            out_refund_no,
            gateway_trade_no=gateway_trade_no,
            gateway_refund_no=gateway_refund_no,
        )

    def verify_and_parse_notification(
        self, headers: Mapping[str, str], body: bytes
    ) -> Notification:
        return self.inner.verify_and_parse_notification(headers, body)

    def notification_ack(self, accepted: bool) -> NotificationAck:
        return self.inner.notification_ack(accepted)

    def fetch_bill(self, bill_date: date) -> Bill:
        return self._call("fetch_bill", self.inner.fetch_bill, bill_date)
