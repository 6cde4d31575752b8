"""The transactional outbox: `emit` writes an event in the caller's transaction; the
dispatcher delivers each event at least once, in order within its stream (one order's
events form one stream), to a pluggable sink."""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from knowpay.kit.clock import Clock
from knowpay.kit.db import Database, insert_rows
from knowpay.kit.ids import new_id
from knowpay.kit.outbox_models import OutboxEvent

logger = logging.getLogger("knowpay.outbox")


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp as API.md writes times: 2026-01-01T12:00:00Z."""
    return moment.isoformat().replace("+00:00", "Z")


def emit(
    session: Session,
    *,
    event_type: str,
    data: dict[str, Any],
    stream_key: str,
    app_id: str | None,
    now: datetime,
) -> str:
    """Record an event in the current transaction: it exists if and only if the change commits.
    Returns its id. The row goes out at once, as a statement built once, not through the
    session's unit of work: every paid flow writes three, and no session reads them back."""
    event_id = new_id("evt")
    envelope = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": rfc3339(now),
        "app_id": app_id,
        "data": {"object": data},
    }
    insert_rows(
        session,
        OutboxEvent,
        {
            "id": event_id,
            "type": event_type,
            "app_id": app_id,
            "stream_key": stream_key,
            "payload": json.dumps(envelope, ensure_ascii=False, separators=(",", ":")),
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
        },
    )
    return event_id


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event handed to a sink."""

    id: str
    seq: int
    type: str
    app_id: str | None
    stream_key: str
    payload: str
    attempts: int


class EventSink(Protocol):
    """Where dispatched events go. Raise to have the event retried later; the sink runs in the
    dispatcher's transaction, so database writes it makes commit with the dispatch mark."""

    def deliver(self, session: Session, event: PendingEvent) -> None: ...


def backoff(attempts: int, *, base_s: float = 2.0, cap_s: float = 3600.0) -> timedelta:
    """Capped exponential backoff with full jitter."""
    ceiling = min(cap_s, base_s * (2 ** min(attempts, 30)))
    return timedelta(seconds=random.uniform(base_s, max(base_s, ceiling)))  # noqa: S311


class OutboxDispatcher:
    """Claims due events (SKIP LOCKED on PostgreSQL, so processes share the work), only the
    oldest undelivered event of each stream, and hands them to the sink."""

    def __init__(
        self, database: Database, sink: EventSink, clock: Clock, batch_size: int = 100
    ) -> None:
        self._database = database
        self._sink = sink
        self._clock = clock
        self._batch_size = batch_size

    def _claim(self, session: Session, now: datetime) -> list[PendingEvent]:
        """Due events, the head of each stream only, as plain values: the session tracks no
        object for them, so each event's savepoint starts with nothing to flush."""
        earlier = aliased(OutboxEvent)
        head_of_stream = ~(
            select(earlier.seq)
            .where(
                earlier.stream_key == OutboxEvent.stream_key,
                earlier.seq < OutboxEvent.seq,
                earlier.dispatched_at.is_(None),
            )
            .exists()
        )
        statement = (
            select(
                OutboxEvent.id,
                OutboxEvent.seq,
                OutboxEvent.type,
                OutboxEvent.app_id,
                OutboxEvent.stream_key,
                OutboxEvent.payload,
                OutboxEvent.attempts,
            )
            .where(
                OutboxEvent.dispatched_at.is_(None),
                OutboxEvent.next_attempt_at <= now,
                head_of_stream,
            )
            .order_by(OutboxEvent.seq)
            .limit(self._batch_size)
        )
        if self._database.dialect == "postgresql":
            statement = statement.with_for_update(skip_locked=True, of=OutboxEvent)
        return [PendingEvent(**row._asdict()) for row in session.execute(statement)]

    def run_once(self) -> int:
        """Deliver one batch; returns how many events were delivered."""
        delivered: list[int] = []
        with self._database.session_scope() as session:
            now = self._clock.now()
            for event in self._claim(session, now):
                try:
                    with session.begin_nested():
                        self._sink.deliver(session, event)
                except Exception as exc:  # the sink's failure is retried, never lost
                    self._retry_later(session, event, exc, now)
                    continue
                delivered.append(event.seq)
            if delivered:  # one statement for the batch, in its transaction
                session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.seq.in_(delivered))
                    .values(dispatched_at=now, attempts=OutboxEvent.attempts + 1)
                )
        return len(delivered)

    @staticmethod
    def _retry_later(session: Session, event: PendingEvent, exc: Exception, now: datetime) -> None:
        attempts = event.attempts + 1
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq == event.seq)
            .values(
                attempts=attempts,
                next_attempt_at=now + backoff(attempts),
                last_error=f"{type(exc).__name__}: {exc}"[:500],
            )
        )
        logger.warning("event %s not delivered (attempt %s): %s", event.id, attempts, exc)

    def run_forever(self, stop: threading.Event, idle_wait_s: float = 0.5) -> None:
        """Loop until `stop` is set, waiting a little whenever there was nothing to do."""
        while not stop.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:
                logger.exception("outbox dispatch failed; will retry")
                busy = False
            if not busy:
                stop.wait(idle_wait_s)
