"""The audit log: `record` in the business transaction, `seal_batch` to chain what committed,
`verify` to walk the chain. Never commits.

A record is written unsealed so that money transactions never wait on one shared chain head
(no hot row); the sealer, one at a time, gives each committed record the next position, the
previous hash and its own hash. See docs/audit.md for the sealing window this leaves."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from knowpay.audit import repository
from knowpay.audit.chain import GENESIS, ChainBreak, record_hash, walk
from knowpay.audit.models import AuditRecord
from knowpay.audit.repository import SearchFilters
from knowpay.kit import context
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams

logger = logging.getLogger("knowpay.audit")

__all__ = [
    "ChainBreak",
    "SearchFilters",
    "Verification",
    "record",
    "seal_batch",
    "search",
    "verify",
]


def _dump(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record(
    session: Session,
    *,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    """Append an audit record in the caller's transaction: it exists if and only if the change
    commits; its id. Actor, request id and IP come from the request context (`system` outside
    one). `before`/`after` are small dicts (status, amounts): never secrets, never full PII."""
    circumstances = context.current()
    record_id = new_id("aud")
    repository.add(
        session,
        {
            "id": record_id,
            "created_at": now or datetime.now(UTC),
            "actor": (circumstances.actor or context.SYSTEM)[:80],
            "ip": circumstances.ip[:64] if circumstances.ip else None,
            "request_id": circumstances.request_id,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "before_json": _dump(before),
            "after_json": _dump(after),
        },
    )
    return record_id


def seal_batch(session: Session, now: datetime, *, limit: int = 500, wait: bool = False) -> int:
    """Chain up to `limit` committed unsealed records; how many were sealed. 0 when another
    sealer holds the lock (unless `wait`)."""
    if not repository.lock_sealer(session, wait=wait):
        return 0
    head = repository.head(session)
    position, previous = head if head is not None else (0, GENESIS)
    sealed = 0
    for row in repository.unsealed(session, limit):
        position += 1
        digest = record_hash(row, position, previous)
        if not repository.seal(
            session, row.id, seq=position, prev_hash=previous, hash_=digest, now=now
        ):  # pragma: no cover - the lock makes this the only sealer
            raise RuntimeError(f"audit record {row.id} was sealed by someone else")
        previous = digest
        sealed += 1
    return sealed


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of walking the chain."""

    records: int
    """Sealed records in the chain."""
    unsealed: int
    """Records committed but not sealed yet (written after the sealing this run did)."""
    head_position: int
    head_hash: str
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(session: Session) -> Verification:
    """Walk every sealed record: contiguous positions, each prev_hash, each hash recomputed."""
    result = walk(repository.sealed_in_order(session))
    return Verification(
        records=repository.count(session, sealed=True),
        unsealed=repository.count(session, sealed=False),
        head_position=result.head_position,
        head_hash=result.head_hash,
        broken=result.broken,
    )


def search(
    session: Session, filters: SearchFilters, params: PageParams
) -> tuple[list[AuditRecord], bool]:
    """Audit records matching the filters, newest first."""
    return repository.search(session, filters, params)
