"""Every SQL statement of the audit log. Never commits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from knowpay.audit.chain import ChainRow
from knowpay.audit.models import AuditRecord
from knowpay.kit.db import insert_rows
from knowpay.kit.pagination import PageParams, page_of

# pg_advisory_xact_lock key of the sealer ("knowpay" + 0x01 as a big-endian int64).
SEALER_LOCK_KEY = 0x6B6E6F7770617901

_CHAIN_COLUMNS = (
    AuditRecord.id,
    AuditRecord.created_at,
    AuditRecord.actor,
    AuditRecord.ip,
    AuditRecord.request_id,
    AuditRecord.action,
    AuditRecord.object_type,
    AuditRecord.object_id,
    AuditRecord.before_json,
    AuditRecord.after_json,
    AuditRecord.seq,
    AuditRecord.prev_hash,
    AuditRecord.hash,
)


def _chain_row(row: Any) -> ChainRow:
    return ChainRow(**row._mapping)


def add(session: Session, values: dict[str, Any]) -> None:
    """Insert one record at once, by a statement built once rather than the session's unit of
    work: every payment step writes one, and no session reads it back."""
    insert_rows(session, AuditRecord, values)


def lock_sealer(session: Session, *, wait: bool) -> bool:
    """Become the one sealer: a transaction-scoped advisory lock on PostgreSQL; on SQLite the
    writing transaction (BEGIN IMMEDIATE) already excludes every other writer."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(text("SELECT 1"))  # opens the writing transaction, taking the lock
        return True
    if wait:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEALER_LOCK_KEY})
        return True
    return bool(
        session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEALER_LOCK_KEY})
    )


def head(session: Session) -> tuple[int, str] | None:
    """The last sealed position and its hash."""
    row = session.execute(
        select(AuditRecord.seq, AuditRecord.hash)
        .where(AuditRecord.seq.is_not(None))
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return int(row[0]), str(row[1])


def unsealed(session: Session, limit: int) -> list[ChainRow]:
    """Committed records waiting for a position, in the deterministic sealing order (by id)."""
    rows = session.execute(
        select(*_CHAIN_COLUMNS)
        .where(AuditRecord.seq.is_(None))
        .order_by(AuditRecord.id)
        .limit(limit)
    ).all()
    return [_chain_row(row) for row in rows]


def seal(
    session: Session, record_id: str, *, seq: int, prev_hash: str, hash_: str, now: datetime
) -> bool:
    """Set the seal of an unsealed record (the only UPDATE the triggers allow)."""
    result = session.execute(
        update(AuditRecord)
        .where(AuditRecord.id == record_id, AuditRecord.seq.is_(None))
        .values(seq=seq, prev_hash=prev_hash, hash=hash_, sealed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def sealed_in_order(session: Session, batch_size: int = 1000) -> Iterator[ChainRow]:
    """Every sealed record by position, streamed."""
    statement = (
        select(*_CHAIN_COLUMNS)
        .where(AuditRecord.seq.is_not(None))
        .order_by(AuditRecord.seq)
        .execution_options(yield_per=batch_size)
    )
    for row in session.execute(statement):
        yield _chain_row(row)


def count(session: Session, *, sealed: bool) -> int:
    condition = AuditRecord.seq.is_not(None) if sealed else AuditRecord.seq.is_(None)
    return int(session.scalar(select(func.count()).select_from(AuditRecord).where(condition)) or 0)


@dataclass(frozen=True, slots=True)
class SearchFilters:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    request_id: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


def search(
    session: Session, filters: SearchFilters, params: PageParams
) -> tuple[list[AuditRecord], bool]:
    """Records matching every given filter, newest first."""
    statement = select(AuditRecord)
    for column, value in (
        (AuditRecord.actor, filters.actor),
        (AuditRecord.action, filters.action),
        (AuditRecord.object_type, filters.object_type),
        (AuditRecord.object_id, filters.object_id),
        (AuditRecord.request_id, filters.request_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if filters.created_gte is not None:
        statement = statement.where(AuditRecord.created_at >= filters.created_gte)
    if filters.created_lt is not None:
        statement = statement.where(AuditRecord.created_at < filters.created_lt)
    return page_of(session, statement, AuditRecord.id, params)
