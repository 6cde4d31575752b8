"""Request rate limits, counted by the `limits` library in process memory or in Redis.

Two places enforce them:

* `RateLimitMiddleware`, in front of every route except the gateways' door (`/notify/…`) and
  the operations endpoints: each API key (by a keyed hash, never the key) gets
  `api_per_key`, each logged-in person (by the verified token's subject) `api_per_person`;
  a caller without valid credentials gets `api_per_ip` for its client IP. An API key that
  turns out to be unknown (401) counts against its IP's failed-authentication budget, and
  an IP over that budget is refused even with a fresh key, so guessing keys is limited too.
* `enforce(...)`, called by the login and payment-password endpoints' dependencies before
  any password is looked at (so before a lockout counter can move).

A refusal is 429 problem+json `rate_limited` with `Retry-After` (whole seconds, at least 1)
and `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`; allowed responses on
limited routes carry the three `RateLimit-*` headers too. When Redis cannot be reached the
request goes through and a warning is logged: the limits protect knowpay, an outage of
their store must not take the payment center down with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio.to_thread
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.strategies import RateLimiter as Strategy
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowpay.kit.config import RateLimitSettings
from knowpay.kit.crypto import derive_key
from knowpay.kit.errors import KnowpayError, problem_response
from knowpay.kit.proxies import TrustedProxies

logger = logging.getLogger("knowpay.ratelimit")

ALWAYS_EXEMPT = ("/notify/", "/healthz", "/readyz", "/metrics")
"""Never limited: a gateway must never be turned away, nor a health probe."""

_STRATEGIES: dict[str, Callable[[Storage], Strategy]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}
_WARN_EVERY_S = 30.0


class RateLimited(KnowpayError):
    status, code, title = 429, "rate_limited", "Too many requests"


@dataclass(frozen=True, slots=True)
class Rule:
    """A named set of limits (e.g. `10/minute;100/hour`) applied to one kind of key."""

    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, text: str) -> Rule:
        return cls(name, tuple(parse_many(text)))


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one request may go on, and what the caller is told about its budget."""

    allowed: bool
    limit: int
    remaining: int
    reset_after_s: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(self.reset_after_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_after_s))
        return headers


class SweptMemoryStorage(MemoryStorage):
    """`limits`' in-process storage, its expired counters swept by one long-lived thread.

    MemoryStorage starts a new 10 ms `threading.Timer` whenever the last one has run out,
    so a process with steady traffic starts a thread for about every request, on the event
    loop, where `Thread.start` waits until the new thread has been scheduled. Here one daemon
    thread sweeps every `sweep_every_s` instead, and stands in MemoryStorage's `timer`: it is
    alive, so MemoryStorage never starts another. The thread holds the storage weakly and
    ends once the storage is gone."""

    def __init__(self, sweep_every_s: float = 1.0) -> None:
        super().__init__()
        self.timer.cancel()
        self.timer = threading.Thread(
            target=_sweep,
            args=(weakref.ref(self), sweep_every_s),
            name="knowpay-ratelimit-sweep",
            daemon=True,
        )  # type: ignore[assignment]  # is_alive() is all MemoryStorage asks of its timer
        self.timer.start()

    def sweep(self) -> None:
        """Drop the counters and window entries that have expired."""
        # MemoryStorage's own (name-mangled) sweep, the one its timers run.
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def _sweep(storage: weakref.ref[SweptMemoryStorage], every_s: float) -> None:
    # An Event that is never set, as a pause: `time.sleep` is global, and a test that
    # patches it out (to skip retry back-offs) would set this loop spinning.
    pause = threading.Event()
    while not pause.wait(every_s):
        alive = storage()
        if alive is None:
            return
        alive.sweep()
        del alive  # hold it only while sweeping, so that it can be collected


class RateLimiter:
    """The rate-limit policy of one knowpay process: its rules and where they are counted."""

    def __init__(
        self, settings: RateLimitSettings, *, redis_url: str | None, master_key: str
    ) -> None:
        self.enabled = settings.enabled
        self.shared = bool(redis_url)
        self.exempt_prefixes = ALWAYS_EXEMPT + tuple(settings.exempt_prefixes)
        self.api_per_key = Rule.parse("api_key", settings.api_per_key)
        self.api_per_person = Rule.parse("api_person", settings.api_per_person)
        self.api_per_ip = Rule.parse("api_ip", settings.api_per_ip)
        self.auth_failures_per_ip = Rule.parse("auth_fail_ip", settings.api_per_ip)
        self.login_per_ip = Rule.parse("login_ip", settings.login_per_ip)
        self.login_per_account = Rule.parse("login_account", settings.login_per_account)
        self.payment_password = Rule.parse("payment_password", settings.payment_password)
        self._digest_key = derive_key(master_key, "knowpay/rate-limit-keys/v1")
        self._last_warning = 0.0
        self._warning_lock = threading.Lock()
        self._strategy: Strategy | None = None
        if self.enabled:
            storage: Storage
            if redis_url:
                shared = storage_from_string(
                    redis_url,
                    key_prefix=settings.key_prefix,
                    wrap_exceptions=True,
                    socket_timeout=settings.storage_timeout_s,
                    socket_connect_timeout=settings.storage_timeout_s,
                )
                if not isinstance(shared, Storage):  # an async+… URL names an asyncio client
                    raise ValueError("KNOWPAY_REDIS_URL must be redis://…, rediss://… or alike")
                storage = shared
            else:
                storage = SweptMemoryStorage()
            self._strategy = _STRATEGIES[settings.strategy](storage)

    def digest(self, secret: str) -> str:
        """A keyed hash naming a secret or personal value (API key, email) in the counters."""
        return hmac.new(self._digest_key, secret.encode("utf-8"), hashlib.sha256).hexdigest()[:40]

    def is_exempt(self, path: str) -> bool:
        return path.startswith(self.exempt_prefixes)

    def hit(self, rule: Rule, key: str) -> Decision:
        """Count one request against `rule` for `key` (blocking; Redis is a network call)."""
        return self._decide(rule, key, consume=True)

    def peek(self, rule: Rule, key: str) -> Decision:
        """Whether `key` still has room under `rule`, without counting anything."""
        return self._decide(rule, key, consume=False)

    async def hit_async(self, rule: Rule, key: str) -> Decision:
        """`hit` from the event loop: Redis calls go to a worker thread."""
        if self.shared:
            return await anyio.to_thread.run_sync(self.hit, rule, key)
        return self.hit(rule, key)

    async def peek_async(self, rule: Rule, key: str) -> Decision:
        if self.shared:
            return await anyio.to_thread.run_sync(self.peek, rule, key)
        return self.peek(rule, key)

    def _decide(self, rule: Rule, key: str, *, consume: bool) -> Decision:
        strategy = self._strategy
        first = rule.items[0]
        if strategy is None:
            return Decision(True, first.amount, first.amount, 0)
        try:
            tightest: Decision | None = None
            for item in rule.items:
                check = strategy.hit if consume else strategy.test
                allowed = check(item, rule.name, key)
                stats = strategy.get_window_stats(item, rule.name, key)
                reset_after_s = max(0, math.ceil(stats.reset_time - time.time()))
                decision = Decision(allowed, item.amount, stats.remaining, reset_after_s)
                if not allowed:
                    return decision
                if tightest is None or decision.remaining < tightest.remaining:
                    tightest = decision
            assert tightest is not None
            return tightest
        except Exception as exc:  # the store is down: let the request through, say so
            self._warn(exc)
            return Decision(True, first.amount, first.amount, 0)

    def _warn(self, exc: Exception) -> None:
        with self._warning_lock:
            now = time.monotonic()
            if now - self._last_warning < _WARN_EVERY_S and self._last_warning:
                return
            self._last_warning = now
        logger.warning("rate limits not enforced, their store failed: %s", exc)


def rate_limited(decision: Decision, what: str) -> RateLimited:
    """The 429 error for a refused decision."""
    retry_after_s = max(1, decision.reset_after_s)
    return RateLimited(
        f"Too many {what}; retry in {retry_after_s} s.",
        headers=decision.headers(),
        retry_after_s=retry_after_s,
    )


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def client_ip(request: Request) -> str:
    """The client's address, believing X-Forwarded-For only from trusted proxies."""
    proxies: TrustedProxies = request.app.state.trusted_proxies
    return proxies.client_ip(request.scope)


def enforce(request: Request, checks: Sequence[tuple[Rule, str]], what: str) -> None:
    """Count this request against each (rule, key); 429 `rate_limited` on the first refusal.
    Call it from a sync dependency (it blocks on Redis)."""
    limiter = limiter_of(request)
    for rule, key in checks:
        decision = limiter.hit(rule, key)
        if not decision.allowed:
            raise rate_limited(decision, what)


CredentialIdentity = Callable[[str], str | None]
"""Bearer credential → the bucket it is counted in (`key:…`, `sub:…`), or None when it is
certainly not valid (a bad token signature): such a caller is counted by IP."""


class RateLimitMiddleware:
    """Per-caller limits on every route but the exempt ones (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        proxies: TrustedProxies,
        identity: CredentialIdentity,
        api_key_prefix: str,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.proxies = proxies
        self.identity = identity
        self.api_key_prefix = api_key_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiter
        if scope["type"] != "http" or not limiter.enabled or limiter.is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        ip = self.proxies.client_ip(scope)
        credential = _bearer(scope)
        identity = self.identity(credential) if credential else None
        unverified_key = credential is not None and credential.startswith(self.api_key_prefix)
        if unverified_key:
            guessing = await limiter.peek_async(limiter.auth_failures_per_ip, ip)
            if not guessing.allowed:
                await self._refuse(scope, receive, send, guessing, "failed authentications")
                return
        if identity is not None:
            rule = limiter.api_per_key if unverified_key else limiter.api_per_person
            decision = await limiter.hit_async(rule, identity)
        else:
            decision = await limiter.hit_async(limiter.api_per_ip, "ip:" + ip)
        if not decision.allowed:
            await self._refuse(scope, receive, send, decision, "requests")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name == b"ratelimit-limit" for name, _ in headers):
                    headers.extend(
                        (name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in decision.headers().items()
                    )
                message["headers"] = headers
                if unverified_key and message.get("status") == 401:
                    await limiter.hit_async(limiter.auth_failures_per_ip, ip)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, decision: Decision, what: str
    ) -> None:
        error = rate_limited(decision, what)
        response = problem_response(
            Request(scope),
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            headers=decision.headers(),
            retry_after_s=max(1, decision.reset_after_s),
        )
        await response(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, secret = bytes(value).decode("latin-1").partition(" ")
            secret = secret.strip()
            return secret if scheme.lower() == "bearer" and secret else None
    return None
