"""The hash chain: what a record's hash covers, and the walk that checks it.

hash = SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of the record's
immutable fields, its position and the previous record's hash. Position 1 links to
`GENESIS`. Pure functions: no database here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class ChainRow:
    """A record as stored: its immutable fields and its seal."""

    id: str
    created_at: datetime
    actor: str
    ip: str | None
    request_id: str | None
    action: str
    object_type: str
    object_id: str
    before_json: str | None
    after_json: str | None
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(row: ChainRow, seq: int, prev_hash: str) -> str:
    """The hash a record has at position `seq` after `prev_hash`."""
    canonical = {
        "id": row.id,
        "created_at": _timestamp(row.created_at),
        "actor": row.actor,
        "ip": row.ip,
        "request_id": row.request_id,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "before": row.before_json,
        "after": row.after_json,
        "seq": seq,
        "prev_hash": prev_hash,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first record at which the chain does not hold."""

    record_id: str
    position: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainWalk:
    """What walking the sealed records found."""

    records: int
    head_position: int
    head_hash: str
    broken: ChainBreak | None


def walk(rows: Iterable[ChainRow]) -> ChainWalk:
    """Check sealed records in position order: contiguous positions from 1, each prev_hash
    the previous record's hash, each hash recomputed. Stops at the first break."""
    expected, previous, count = 1, GENESIS, 0
    for row in rows:
        count += 1
        seq = row.seq or 0
        if seq != expected:
            missing = (
                f"position {expected}" if seq == expected + 1 else f"positions {expected}–{seq - 1}"
            )
            reason = (
                f"{missing} missing before this record (deleted?)"
                if seq > expected
                else f"position {seq} is out of order (expected {expected})"
            )
            return ChainWalk(count, expected - 1, previous, ChainBreak(row.id, seq, reason))
        if row.prev_hash != previous:
            reason = (
                f"prev_hash does not match the hash of position {expected - 1} "
                "(that record or this link was changed)"
            )
            return ChainWalk(count, expected - 1, previous, ChainBreak(row.id, seq, reason))
        if record_hash(row, seq, previous) != row.hash:
            reason = "hash mismatch: the record was changed after it was sealed"
            return ChainWalk(count, expected - 1, previous, ChainBreak(row.id, seq, reason))
        previous, expected = row.hash, expected + 1
    return ChainWalk(count, expected - 1, previous, None)
