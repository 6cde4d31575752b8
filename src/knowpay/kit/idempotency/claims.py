"""Claiming an Idempotency-Key in a transaction of its own: a new row, an expired one started
again, or a stale one taken over; and purging expired records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from knowpay.kit.clock import Clock
from knowpay.kit.db import Database, insert_unless_present
from knowpay.kit.idempotency._shared import (
    COMPLETED,
    IN_PROGRESS,
    KEEP_FOR,
    LOCK_FOR,
    _Decision,
    _Proceed,
    _Refuse,
    _Replay,
    logger,
)
from knowpay.kit.idempotency_models import IdempotencyRecord

_MAX_SCOPE_LENGTH = 80  # the width of idempotency_keys.scope
_CLAIM_ATTEMPTS = 5


def purge_expired(session: Session, now: datetime) -> int:
    """Delete every record past its expiry; the number deleted. The caller commits."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


_IN_USE = _Refuse(
    409,
    "idempotency_key_in_use",
    "The idempotency key is in use",
    "A request with this Idempotency-Key is still being processed; retry later.",
)
_REUSED = _Refuse(
    422,
    "idempotency_key_reused",
    "The idempotency key was used for another request",
    "This Idempotency-Key was already used with a different method, path, query or body.",
)


def _scope_column(scope: str) -> str:
    if len(scope) <= _MAX_SCOPE_LENGTH:
        return scope
    return "sha256:" + hashlib.sha256(scope.encode("utf-8")).hexdigest()


def _restart(record: IdempotencyRecord, fingerprint: str, now: datetime) -> None:
    record.request_fingerprint = fingerprint
    record.state = IN_PROGRESS
    record.locked_until = now + LOCK_FOR
    record.response_status = None
    record.response_headers = None
    record.response_body = None
    record.created_at = now
    record.expires_at = now + KEEP_FOR


def _claim_once(
    session: Session,
    scope: str,
    key: str,
    fingerprint: str,
    accepted: frozenset[str],
    now: datetime,
) -> _Decision | None:
    """One claim attempt in one transaction; None when the row vanished under us. The key's
    request is the same when its stored fingerprint is one of `accepted`."""
    # A key seen before (or claimed concurrently) is no error: then the row is looked at.
    claimed = insert_unless_present(
        session,
        IdempotencyRecord,
        {
            "scope": scope,
            "key": key,
            "request_fingerprint": fingerprint,
            "state": IN_PROGRESS,
            "locked_until": now + LOCK_FOR,
            "created_at": now,
            "expires_at": now + KEEP_FOR,
        },
        unique=("scope", "key"),
    )
    if claimed is not None:
        return _Proceed(scope, key, now + LOCK_FOR)
    record = session.scalars(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if record is None:
        return None
    if record.expires_at <= now:
        _restart(record, fingerprint, now)
        return _Proceed(scope, key, now + LOCK_FOR)
    if record.request_fingerprint not in accepted:
        return _REUSED
    if record.state == COMPLETED and record.response_status is not None:
        if record.locked_until is not None and record.locked_until > now:
            # An interim answer, and the request that stored it is still running: its final
            # answer is yet to come (after a crash, the lock's end lets the interim one out).
            return _IN_USE
        headers = [(str(n), str(v)) for n, v in json.loads(record.response_headers or "[]")]
        return _Replay(record.response_status, headers, record.response_body or b"")
    if record.locked_until is not None and record.locked_until > now:
        return _IN_USE
    # The owner outlived its lock (crashed, or far too slow): take the key over.
    logger.warning("taking over a stale idempotency key", extra={"idempotency_scope": scope})
    _restart(record, fingerprint, now)
    return _Proceed(scope, key, now + LOCK_FOR)


def _claim(
    database: Database,
    resolve: Callable[[Session], str | None],
    key: str,
    fingerprint: str,
    accepted: frozenset[str],
    clock: Clock,
) -> tuple[str, _Decision] | None:
    """Name the caller and claim the key in one transaction (retried when the row vanished
    under us); None when the caller cannot be authenticated."""
    for _ in range(_CLAIM_ATTEMPTS):
        with database.session_scope() as session:
            caller = resolve(session)
            if caller is None:
                return None
            owner = _scope_column(caller)
            decision = _claim_once(session, owner, key, fingerprint, accepted, clock.now())
        if decision is not None:
            return owner, decision
    raise RuntimeError("the idempotency key kept changing under concurrent requests")
