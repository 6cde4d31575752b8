"""The outbox: events commit with their change, are delivered at least once, in order per
stream, and several dispatchers share the work without delivering twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.outbox import OutboxDispatcher, PendingEvent, emit
from knowpay.kit.outbox_models import OutboxEvent


class RecordingSink:
    def __init__(self, fail_times: dict[str, int] | None = None) -> None:
        self.delivered: list[PendingEvent] = []
        self.fail_times = dict(fail_times or {})
        self.lock = threading.Lock()

    def deliver(self, session: Session, event: PendingEvent) -> None:
        with self.lock:
            if self.fail_times.get(event.type, 0) > 0:
                self.fail_times[event.type] -= 1
                raise ConnectionError("receiver down")
            self.delivered.append(event)


def _emit(database: Database, clock: FrozenClock, stream: str, *types: str) -> None:
    with database.session_scope() as session:
        for event_type in types:
            emit(
                session,
                event_type=event_type,
                data={"id": stream},
                stream_key=stream,
                app_id=None,
                now=clock.now(),
            )


def test_an_event_exists_only_if_its_transaction_commits(
    database: Database, clock: FrozenClock
) -> None:
    def change_that_fails() -> None:
        with database.session_scope() as session:
            emit(
                session,
                event_type="order.paid",
                data={},
                stream_key="ord_1",
                app_id=None,
                now=clock.now(),
            )
            raise RuntimeError("the money change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    with database.session_scope(read_only=True) as session:
        assert session.scalars(select(OutboxEvent)).all() == []


def test_delivers_every_event_once_in_order_per_stream(
    database: Database, clock: FrozenClock
) -> None:
    _emit(database, clock, "ord_a", "payment.succeeded", "order.paid", "entitlement.granted")
    _emit(database, clock, "ord_b", "order.closed")
    sink = RecordingSink()
    dispatcher = OutboxDispatcher(database, sink, clock)
    while dispatcher.run_once():
        pass
    assert [e.type for e in sink.delivered if e.stream_key == "ord_a"] == [
        "payment.succeeded",
        "order.paid",
        "entitlement.granted",
    ]
    assert len(sink.delivered) == 4
    assert dispatcher.run_once() == 0


def test_a_failed_delivery_is_retried_later_and_holds_back_its_stream_only(
    database: Database, clock: FrozenClock
) -> None:
    _emit(database, clock, "ord_a", "payment.succeeded", "order.paid")
    _emit(database, clock, "ord_b", "order.closed")
    sink = RecordingSink(fail_times={"payment.succeeded": 1})
    dispatcher = OutboxDispatcher(database, sink, clock)
    while dispatcher.run_once():
        pass
    # ord_b went out; ord_a waits behind its failed first event.
    assert [e.type for e in sink.delivered] == ["order.closed"]
    with database.session_scope(read_only=True) as session:
        failed = session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "payment.succeeded")
        ).one()
        assert failed.attempts == 1
        assert "receiver down" in (failed.last_error or "")
    clock.advance(timedelta(hours=2))
    while dispatcher.run_once():
        pass
    assert [e.type for e in sink.delivered] == ["order.closed", "payment.succeeded", "order.paid"]


def test_dispatchers_running_together_deliver_each_event_once(
    database: Database, clock: FrozenClock
) -> None:
    for index in range(40):
        _emit(database, clock, f"ord_{index}", "payment.succeeded", "order.paid")
    sink = RecordingSink()
    dispatchers = [OutboxDispatcher(database, sink, clock, batch_size=7) for _ in range(4)]
    stop = threading.Event()
    threads = [threading.Thread(target=d.run_forever, args=(stop, 0.01)) for d in dispatchers]
    for thread in threads:
        thread.start()
    deadline = threading.Event()
    for _ in range(300):
        if len(sink.delivered) >= 80:
            break
        deadline.wait(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    ids = [e.id for e in sink.delivered]
    assert len(ids) == 80
    assert len(set(ids)) == 80
    for index in range(40):
        assert [e.type for e in sink.delivered if e.stream_key == f"ord_{index}"] == [
            "payment.succeeded",
            "order.paid",
        ]
