"""Raising and listing alerts. Never commits: an alert commits with what caused it."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.alerts.models import Alert
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams, paginate_query, split_page

logger = logging.getLogger("knowpay.alerts")


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
        subject_id=subject_id,
        message=message[:2000],
        created_at=now,
    )
    session.add(alert)
    logger.error("alert %s (%s): %s", kind, subject_id, message)
    return alert


def list_alerts(
    session: Session, params: PageParams, *, kind: str | None
) -> tuple[list[Alert], bool]:
    """Alerts newest first."""
    statement = select(Alert)
    if kind is not None:
        statement = statement.where(Alert.kind == kind)
    return split_page(session.scalars(paginate_query(statement, Alert.id, params)).all(), params)
