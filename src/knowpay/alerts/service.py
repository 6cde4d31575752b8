"""Raising and listing alerts. raise_alert never commits: an alert commits with what caused
it. Breaker alerts are the exception: they are written by a thread of their own, because a
breaker changes state in the middle of a gateway call, inside someone else's transaction."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.alerts.models import Alert
from knowpay.channels.health import BreakerState, StateListener
from knowpay.kit.clock import Clock
from knowpay.kit.db import Database
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams, page_of

logger = logging.getLogger("knowpay.alerts")

SUBJECT_WIDTH = 160
"""What `alerts.subject_id` holds; a subject naming a gateway's id may be longer."""


def _as_stored(subject_id: str | None) -> str | None:
    return None if subject_id is None else subject_id[:SUBJECT_WIDTH]


def raise_alert(
    session: Session,
    *,
    kind: str,
    message: str,
    now: datetime,
    subject_id: str | None = None,
    severity: str = "error",
) -> Alert:
    """Record an alert for staff and log it."""
    alert = Alert(
        id=new_id("alrt"),
        kind=kind,
        severity=severity,
        subject_id=_as_stored(subject_id),
        message=message[:2000],
        created_at=now,
    )
    session.add(alert)
    logger.error("alert %s (%s): %s", kind, subject_id, message)
    return alert


def raise_alert_once(
    session: Session,
    *,
    kind: str,
    message: str,
    now: datetime,
    subject_id: str,
    severity: str = "error",
) -> Alert | None:
    """raise_alert, unless an alert of this kind about this subject is still unacknowledged
    (a gateway that says the same thing again, by notification and by query, is one matter)."""
    open_one = session.scalars(
        select(Alert.id).where(
            Alert.kind == kind,
            Alert.subject_id == _as_stored(subject_id),
            Alert.acknowledged_at.is_(None),
        )
    ).first()
    if open_one is not None:
        return None
    return raise_alert(
        session, kind=kind, message=message, now=now, subject_id=subject_id, severity=severity
    )


def list_alerts(
    session: Session, params: PageParams, *, kind: str | None
) -> tuple[list[Alert], bool]:
    """Alerts newest first."""
    statement = select(Alert)
    if kind is not None:
        statement = statement.where(Alert.kind == kind)
    return page_of(session, statement, Alert.id, params)


def breaker_alerts(database: Database, clock: Clock) -> StateListener:
    """A listener that tells staff when a gateway's breaker opens (and when it closes)."""

    def write(gateway: str, old: BreakerState, new: BreakerState) -> None:
        with database.session_scope() as session:
            raise_alert(
                session,
                kind="channel.breaker_opened" if new == "open" else "channel.breaker_closed",
                severity="error" if new == "open" else "info",
                subject_id=gateway,
                message=f"The {gateway} gateway's circuit breaker went from {old} to {new}.",
                now=clock.now(),
            )

    def on_change(gateway: str, old: BreakerState, new: BreakerState) -> None:
        # The edges staff act on: an outage begins (closed → open) and ends (→ closed). A
        # trial call that fails (half_open → open) is the same outage, not a new alert.
        if (old, new) == ("closed", "open") or (new == "closed" and old != "closed"):
            threading.Thread(
                target=write, args=(gateway, old, new), name=f"breaker-alert-{gateway}", daemon=True
            ).start()

    return on_change
