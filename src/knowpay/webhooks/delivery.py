"""From the outbox to the apps' endpoints.

`WebhookFanout` is the outbox's sink: it turns each event into one delivery row per
subscribed endpoint, in the dispatcher's transaction. `WebhookDeliverer` sends them: it
leases due deliveries in a short transaction (SKIP LOCKED on PostgreSQL), posts them with
no transaction open, and records the outcome under the lease. A worker killed mid-send
leaves a lease that simply expires, and the delivery is sent again (at least once).
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from knowpay.alerts.service import raise_alert
from knowpay.kit.clock import Clock
from knowpay.kit.crypto import SecretBox
from knowpay.kit.db import Database
from knowpay.kit.http import make_client, mask
from knowpay.kit.ids import new_id
from knowpay.kit.outbox import PendingEvent
from knowpay.webhooks import service
from knowpay.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from knowpay.webhooks.schemas import ALL_EVENTS
from knowpay.webhooks.signing import SIGNATURE_HEADER, signature_header
from knowpay.webhooks.targets import pin

logger = logging.getLogger("knowpay.webhooks")


class WebhookFanout:
    """The outbox sink: one pending delivery per endpoint subscribed to the event."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def deliver(self, session: Session, event: PendingEvent) -> None:
        if event.app_id is None:
            return
        now = self._clock.now()
        subscribed = [
            endpoint_id
            for endpoint_id, wanted in _endpoints_of(session, event.app_id)
            if ALL_EVENTS in wanted or event.type in wanted
        ]
        for endpoint_id in subscribed:
            session.add(
                WebhookDelivery(
                    id=new_id("whd"),
                    endpoint_id=endpoint_id,
                    event_id=event.id,
                    event_seq=event.seq,
                    event_type=event.type,
                    stream_key=event.stream_key,
                    payload=event.payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        if subscribed:
            session.flush()


_ENDPOINTS_OF_APP = "knowpay.webhooks.endpoints_of_app"


def _endpoints_of(session: Session, app_id: str) -> list[tuple[str, frozenset[str]]]:
    """(endpoint id, the event types it wants) of the app's live endpoints, read once per
    session: the dispatcher's session is one batch, one transaction, so its events see the
    endpoints as of that batch, as one query per event would within the same moment."""
    known: dict[str, list[tuple[str, frozenset[str]]]] = session.info.setdefault(
        _ENDPOINTS_OF_APP, {}
    )
    if app_id not in known:
        rows = session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events_json).where(
                WebhookEndpoint.app_id == app_id, WebhookEndpoint.deleted_at.is_(None)
            )
        )
        known[app_id] = [(row.id, frozenset(json.loads(row.events_json))) for row in rows]
    return known[app_id]


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A leased delivery, with everything needed to send it and no database session."""

    delivery_id: str
    lease_token: str
    url: str
    secrets: list[str]
    event_id: str
    event_type: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout_s: float = 10.0
    retry_window: timedelta = timedelta(hours=72)
    """Retries go on at least this long after the event (API.md: at least 24 hours)."""
    base_delay_s: float = 30.0
    max_delay_s: float = 6 * 3600.0
    public_targets_only: bool = False
    """Send only to hosts that resolve to public addresses (production: `webhooks.targets`)."""


def retry_delay(attempts: int, policy: DeliveryPolicy) -> timedelta:
    """Exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2 ** min(attempts - 1, 20)))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311


class WebhookDeliverer:
    """Leases due deliveries and sends them, many at once, in order within each stream."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        box: SecretBox,
        policy: DeliveryPolicy | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._box = box
        self.policy = policy or DeliveryPolicy()
        self._client = client or make_client(
            connect_timeout_s=self.policy.timeout_s, read_timeout_s=self.policy.timeout_s
        )

    # Leasing ------------------------------------------------------------------------

    def claim(self, limit: int) -> list[DeliveryJob]:
        """Lease up to `limit` due deliveries, each the oldest pending one of its stream."""
        with self._database.session_scope() as session:
            now = self._clock.now()
            earlier = aliased(WebhookDelivery)
            head_of_stream = ~(
                select(earlier.id)
                .where(
                    earlier.endpoint_id == WebhookDelivery.endpoint_id,
                    earlier.stream_key == WebhookDelivery.stream_key,
                    earlier.event_seq < WebhookDelivery.event_seq,
                    earlier.status == "pending",
                )
                .exists()
            )
            statement = (
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
                    head_of_stream,
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_seq)
                .limit(limit)
            )
            if self._database.dialect == "postgresql":
                statement = statement.with_for_update(skip_locked=True, of=WebhookDelivery)
            jobs = []
            # Long enough for one send; a worker that dies holding it frees it soon after.
            lease_until = now + timedelta(seconds=self.policy.timeout_s * 2 + 5)
            for delivery in session.scalars(statement).all():
                endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
                if endpoint is None:  # pragma: no cover - endpoints are never removed
                    continue
                if endpoint.deleted_at is not None:  # deleted after this was queued
                    delivery.status, delivery.finished_at = "cancelled", now
                    continue
                delivery.leased_until, delivery.lease_token = lease_until, secrets.token_hex(8)
                jobs.append(
                    DeliveryJob(
                        delivery.id,
                        delivery.lease_token,
                        endpoint.url,
                        service.signing_secrets(self._box, endpoint, now),
                        delivery.event_id,
                        delivery.event_type,
                        delivery.payload.encode("utf-8"),
                    )
                )
            return jobs

    # Sending ------------------------------------------------------------------------

    def send(self, job: DeliveryJob) -> SendResult:
        """POST the event, signed; never raises."""
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "knowpay-webhooks/1",
            SIGNATURE_HEADER: signature_header(job.secrets, timestamp, job.payload),
            "Knowpay-Event-Id": job.event_id,
            "Knowpay-Event-Type": job.event_type,
        }
        url, extensions = job.url, {}
        if self.policy.public_targets_only:
            pinned = pin(job.url)
            if pinned is None:
                refused = "not sent: the URL's host does not resolve to public addresses only"
                return SendResult(None, 0, None, refused)
            url, headers["Host"] = pinned.url, pinned.host_header
            extensions = {"sni_hostname": pinned.server_name}
        started = time.monotonic()
        try:
            with self._client.stream(
                "POST",
                url,
                content=job.payload,
                headers=headers,
                timeout=self.policy.timeout_s,
                extensions=extensions,
            ) as response:
                excerpt = _answer_excerpt(response, started + self.policy.timeout_s)
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            # InvalidURL and UnicodeError (IDNA): a host that cannot be written on the wire,
            # which httpx and the resolver refuse without an httpx.HTTPError.
            latency = int((time.monotonic() - started) * 1000)
            return SendResult(None, latency, None, f"{type(exc).__name__}: {exc}"[:500])
        latency = int((time.monotonic() - started) * 1000)
        return SendResult(response.status_code, latency, mask(excerpt, 500), None)

    # Recording ----------------------------------------------------------------------

    def record(self, job: DeliveryJob, result: SendResult) -> None:
        """Log the attempt and settle the delivery, if this worker still holds its lease. The
        event is already at the receiver: a database that refuses a connection for a moment
        is waited for a few seconds (well inside the lease), or the send is repeated."""
        for attempt in Retrying(
            retry=retry_if_exception_type(OperationalError),
            wait=wait_exponential(multiplier=0.25, max=2),
            stop=stop_after_attempt(RECORD_ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                self._record_once(job, result)

    def _record_once(self, job: DeliveryJob, result: SendResult) -> None:
        with self._database.session_scope() as session:
            now = self._clock.now()
            session.add(
                WebhookAttempt(
                    id=new_id("wha"),
                    delivery_id=job.delivery_id,
                    attempted_at=now,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    response_excerpt=result.response_excerpt,
                    error=result.error,
                )
            )
            delivery = session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.id == job.delivery_id)
                .with_for_update()
            ).first()
            if (
                delivery is None
                or delivery.lease_token != job.lease_token
                or delivery.status != "pending"
            ):
                return  # the lease was lost (took too long); the new holder settles it
            delivery.attempts += 1
            delivery.last_status_code = result.status_code
            delivery.last_error = result.error
            delivery.leased_until, delivery.lease_token = None, None
            if result.ok:
                delivery.status, delivery.finished_at = "succeeded", now
            elif now - delivery.created_at >= self.policy.retry_window:
                delivery.status, delivery.finished_at = "failed", now
                raise_alert(
                    session,
                    kind="webhook_failed",
                    subject_id=delivery.id,
                    now=now,
                    message=f"Event {delivery.event_id} could not be delivered to endpoint "
                    f"{delivery.endpoint_id} after {delivery.attempts} attempts.",
                )
            else:
                delivery.next_attempt_at = now + retry_delay(delivery.attempts, self.policy)

    def deliver(self, job: DeliveryJob) -> SendResult:
        result = self.send(job)
        self.record(job, result)
        return result

    def run_once(self, limit: int = 50) -> int:
        """Lease and deliver one batch one after another (tests and small setups)."""
        jobs = self.claim(limit)
        for job in jobs:
            self.deliver(job)
        return len(jobs)

    def run_forever(
        self, stop: threading.Event, max_in_flight: int = 16, idle_wait_s: float = 0.5
    ) -> None:
        """Keep up to `max_in_flight` sends going; a slow receiver holds one slot, not the rest.
        On stop, sends in flight finish (each bounded by the timeout); unsent leases expire."""
        in_flight: set[Future[SendResult]] = set()
        with ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="webhook") as pool:
            while not stop.is_set():
                in_flight = {f for f in in_flight if not f.done()}
                free = max_in_flight - len(in_flight)
                jobs: list[DeliveryJob] = []
                if free > 0:
                    try:
                        jobs = self.claim(free)
                    except Exception:
                        logger.exception("leasing webhook deliveries failed; will retry")
                in_flight |= {pool.submit(self._deliver_logged, job) for job in jobs}
                if not jobs:
                    stop.wait(idle_wait_s)

    def _deliver_logged(self, job: DeliveryJob) -> SendResult:
        try:
            return self.deliver(job)
        except Exception:
            logger.exception(
                "delivery %s failed to record; its lease will expire and it is retried",
                job.delivery_id,
            )
            return SendResult(None, 0, None, "internal error")


_EXCERPT_BYTES = 2048
RECORD_ATTEMPTS = 4
"""Tries to record a sent delivery (0.25, 0.5 and 1 s apart) before its lease is left to run
out and the event is sent again."""


def _answer_excerpt(response: httpx.Response, deadline: float) -> str:
    """The start of the receiver's answer, for the attempt log. The status, already received,
    decides the delivery; the body is read only this far and only until the send's time is
    up, so a receiver that answers 200 and then trickles, stalls, hangs up or sends megabytes
    neither holds the delivery past its lease, where it would be sent again, nor fills the
    worker's memory. A compressed body is not inflated (a small one can inflate to a lot)."""
    received = b""
    # An answer already read into memory (a transport that is not the network) has no raw
    # stream left; its decoded content is all there is.
    chunks = iter([response.content]) if response.is_stream_consumed else response.iter_raw()
    try:
        for chunk in chunks:
            received += chunk
            if len(received) >= _EXCERPT_BYTES or time.monotonic() >= deadline:
                break
    except httpx.HTTPError as exc:  # after the status: the answer stands, its body is cut
        return f"{_decoded(response, received)} [body cut short: {type(exc).__name__}]"
    return _decoded(response, received)


def _decoded(response: httpx.Response, raw: bytes) -> str:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return f"[{encoding}-encoded answer of {len(raw)}+ bytes, not shown]"
    try:
        return raw[:_EXCERPT_BYTES].decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw[:_EXCERPT_BYTES].decode("utf-8", errors="replace")
