"""Read-only looks into the database for assertions: events, journal entries, the checks."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import func, select, text

from knowpay.entitlements.models import Entitlement
from knowpay.gateway_notifications.models import InboundNotification
from knowpay.kit.db import Database
from knowpay.kit.outbox_models import OutboxEvent
from knowpay.ledger.models import JournalEntry, Posting
from knowpay.refunds import integrity


def events(
    database: Database, event_type: str | None = None, stream_key: str | None = None
) -> list[dict[str, Any]]:
    """Outbox events in the order they were written."""
    with database.session_scope(read_only=True) as session:
        statement = select(OutboxEvent).order_by(OutboxEvent.seq)
        if event_type:
            statement = statement.where(OutboxEvent.type == event_type)
        if stream_key:
            statement = statement.where(OutboxEvent.stream_key == stream_key)
        return [json.loads(e.payload) for e in session.scalars(statement).all()]


def entries(
    database: Database, kind: str | None = None, payment_id: str | None = None
) -> list[JournalEntry]:
    with database.session_scope(read_only=True) as session:
        statement = select(JournalEntry)
        if kind:
            statement = statement.where(JournalEntry.kind == kind)
        if payment_id:
            statement = statement.where(JournalEntry.payment_id == payment_id)
        return list(session.scalars(statement).all())


def account_balance(database: Database, account: str, currency: str = "CNY") -> int:
    with database.session_scope(read_only=True) as session:
        total = session.scalar(
            select(func.coalesce(func.sum(Posting.amount_minor), 0)).where(
                Posting.account == account, Posting.currency == currency
            )
        )
        return int(total or 0)


def entitlements(database: Database, user_id: str) -> list[Entitlement]:
    with database.session_scope(read_only=True) as session:
        return list(
            session.scalars(select(Entitlement).where(Entitlement.user_id == user_id)).all()
        )


def notifications(database: Database) -> list[InboundNotification]:
    with database.session_scope(read_only=True) as session:
        return list(
            session.scalars(select(InboundNotification).order_by(InboundNotification.id)).all()
        )


def violations(database: Database) -> list[str]:
    """Every broken ledger invariant, as readable strings (empty when sound)."""
    with database.session_scope(read_only=True) as session:
        return [f"{v.rule} {v.object_id}: {v.detail}" for v in integrity.check(session)]


def wait_for_a_row_lock_wait(database: Database, waiter: str, timeout_s: float = 10.0) -> None:
    """Until some session of this PostgreSQL database waits for a row lock; `waiter` names
    who should be waiting, for the failure."""
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        with database.engine.connect() as connection:
            if connection.scalar(query):
                return
        time.sleep(0.02)
    raise AssertionError(f"{waiter} never waited for a row lock")
