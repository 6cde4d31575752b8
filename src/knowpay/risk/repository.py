"""Every SQL statement of risk control. Never commits."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import (
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from knowpay.kit.db import insert_rows
from knowpay.kit.pagination import PageParams, page_of
from knowpay.risk.models import RiskAttemptRecord, RiskBlacklistEntry, RiskDecision, RiskRule


def add(session: Session, row: RiskRule | RiskBlacklistEntry | RiskDecision) -> None:
    session.add(row)
    session.flush()


def add_attempt(session: Session, values: dict[str, object]) -> None:
    """Log an attempt at once, by a statement built once: every payment writes one, and the
    rules count attempts in SQL, never as objects."""
    insert_rows(session, RiskAttemptRecord, values)


# Rules


def enabled_rules(session: Session) -> list[RiskRule]:
    """Every enabled rule in priority order: the one query an assessment makes for rules."""
    return list(session.scalars(_select_enabled_rules()))


@functools.cache
def _select_enabled_rules() -> Select[RiskRule]:
    """Built once (see `kit.db.insert_unless_present`), as the other hot statements here."""
    return (
        select(RiskRule).where(RiskRule.enabled.is_(True)).order_by(RiskRule.priority, RiskRule.id)
    )


def get_rule(session: Session, rule_id: str, *, for_update: bool = False) -> RiskRule | None:
    statement = select(RiskRule).where(RiskRule.id == rule_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalars(statement).first()


def list_rules(
    session: Session, params: PageParams, *, kind: str | None, enabled: bool | None
) -> tuple[list[RiskRule], bool]:
    statement = select(RiskRule)
    if kind is not None:
        statement = statement.where(RiskRule.kind == kind)
    if enabled is not None:
        statement = statement.where(RiskRule.enabled.is_(enabled))
    return page_of(session, statement, RiskRule.id, params)


# Blacklist


def blacklist_hits(
    session: Session, candidates: Iterable[tuple[str, str]]
) -> list[RiskBlacklistEntry]:
    """The entries among `(kind, value)` candidates, in one query."""
    wanted = [
        and_(RiskBlacklistEntry.kind == k, RiskBlacklistEntry.value == v) for k, v in candidates
    ]
    if not wanted:
        return []
    statement = select(RiskBlacklistEntry).where(or_(*wanted)).order_by(RiskBlacklistEntry.kind)
    return list(session.scalars(statement))


def find_blacklist_entry(session: Session, kind: str, value: str) -> RiskBlacklistEntry | None:
    return session.scalars(_select_blacklist_entry(), {"kind": kind, "value": value}).first()


@functools.cache
def _select_blacklist_entry() -> Select[RiskBlacklistEntry]:
    return select(RiskBlacklistEntry).where(
        RiskBlacklistEntry.kind == bindparam("kind", type_=String),
        RiskBlacklistEntry.value == bindparam("value", type_=String),
    )


def get_blacklist_entry(session: Session, entry_id: str) -> RiskBlacklistEntry | None:
    return session.get(RiskBlacklistEntry, entry_id)


def delete_blacklist_entry(session: Session, entry: RiskBlacklistEntry) -> None:
    session.delete(entry)
    session.flush()


def list_blacklist(
    session: Session, params: PageParams, *, kind: str | None, value: str | None
) -> tuple[list[RiskBlacklistEntry], bool]:
    statement = select(RiskBlacklistEntry)
    if kind is not None:
        statement = statement.where(RiskBlacklistEntry.kind == kind)
    if value is not None:
        statement = statement.where(RiskBlacklistEntry.value == value)
    return page_of(session, statement, RiskBlacklistEntry.id, params)


# Attempts log

_SUBJECT_COLUMNS: dict[str, InstrumentedAttribute[str | None]] = {
    "ip": RiskAttemptRecord.client_ip,
    "device": RiskAttemptRecord.device_id,
}


def count_attempts(session: Session, subject: str, value: str, since: datetime) -> int:
    """Attempts by one buyer, IP or device logged after `since`."""
    column = RiskAttemptRecord.user_id if subject == "buyer" else _SUBJECT_COLUMNS[subject]
    statement = (
        select(func.count())
        .select_from(RiskAttemptRecord)
        .where(column == value, RiskAttemptRecord.created_at > since)
    )
    return int(session.scalar(statement) or 0)


def latest_finished_outcomes(
    session: Session, user_id: str, since: datetime, outcomes: Iterable[str], limit: int
) -> list[str]:
    """Outcomes of the buyer's latest finished attempts after `since`, newest first."""
    statement = (
        select(RiskAttemptRecord.outcome)
        .where(
            RiskAttemptRecord.user_id == user_id,
            RiskAttemptRecord.created_at > since,
            RiskAttemptRecord.outcome.in_(list(outcomes)),
        )
        .order_by(RiskAttemptRecord.created_at.desc(), RiskAttemptRecord.id.desc())
        .limit(limit)
    )
    return list(session.scalars(statement))


def outcome_totals(session: Session, user_id: str, currency: str, outcome: str) -> tuple[int, int]:
    """How many of the buyer's attempts in `currency` had `outcome`, and their amounts' sum."""
    statement = select(
        func.count(), func.coalesce(func.sum(RiskAttemptRecord.amount_minor), 0)
    ).where(
        RiskAttemptRecord.user_id == user_id,
        RiskAttemptRecord.outcome == outcome,
        RiskAttemptRecord.currency == currency,
    )
    count, total = session.execute(statement).one()
    return int(count), int(total)


def set_outcome(
    session: Session, payment_id: str, outcome: str, from_outcomes: Iterable[str], now: datetime
) -> bool:
    """Move an attempt's outcome, only from one of `from_outcomes`; whether it moved."""
    params = {
        "of_payment_id": payment_id,
        "from_outcomes": list(from_outcomes),
        "new_outcome": outcome,
        "new_outcome_at": now,
    }
    result = session.execute(_update_outcome(), params)
    return int(getattr(result, "rowcount", 0) or 0) == 1


@functools.cache
def _update_outcome() -> Update:
    """The table's, not the class's: no session keeps attempts as objects to keep in step."""
    table = cast(Table, RiskAttemptRecord.__table__)
    return (
        update(table)
        .where(
            table.c.payment_id == bindparam("of_payment_id", type_=String),
            table.c.outcome.in_(bindparam("from_outcomes", expanding=True)),
        )
        .values(outcome=bindparam("new_outcome"), outcome_at=bindparam("new_outcome_at"))
    )


def lock_subjects(session: Session, keys: Iterable[str]) -> None:
    """Serialise assessments that count the same subjects until this transaction ends, so two
    concurrent attempts cannot both pass a velocity limit. PostgreSQL only: SQLite already
    runs one writing transaction at a time. Sorted, so two assessments never deadlock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        digest = hashlib.sha256(f"knowpay.risk:{key}".encode()).digest()
        lock_id = int.from_bytes(digest[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


# Decisions


def get_decision(
    session: Session, decision_id: str, *, for_update: bool = False
) -> RiskDecision | None:
    statement = select(RiskDecision).where(RiskDecision.id == decision_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalars(statement).first()


def decision_for_payment(session: Session, payment_id: str) -> RiskDecision | None:
    statement = select(RiskDecision).where(RiskDecision.payment_id == payment_id)
    return session.scalars(statement).first()


def list_decisions(
    session: Session,
    params: PageParams,
    *,
    reviews_only: bool = False,
    review_status: str | None = None,
    decision: str | None = None,
    payment_id: str | None = None,
    user_id: str | None = None,
) -> tuple[list[RiskDecision], bool]:
    statement = select(RiskDecision)
    if reviews_only:
        statement = statement.where(RiskDecision.review_status.is_not(None))
    if review_status is not None:
        statement = statement.where(RiskDecision.review_status == review_status)
    if decision is not None:
        statement = statement.where(RiskDecision.decision == decision)
    if payment_id is not None:
        statement = statement.where(RiskDecision.payment_id == payment_id)
    if user_id is not None:
        statement = statement.where(RiskDecision.user_id == user_id)
    return page_of(session, statement, RiskDecision.id, params)
