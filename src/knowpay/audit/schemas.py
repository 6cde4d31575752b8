"""Response bodies of the audit log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from knowpay.audit.models import AuditRecord


class AuditRecordOut(BaseModel):
    object: Literal["audit_record"] = "audit_record"
    id: str
    created_at: datetime
    actor: str = Field(
        description="`staff:usr_…`, `app:app_…`, `buyer:usr_…`, `gateway:…`, `system`"
    )
    ip: str | None
    request_id: str | None
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: int | None = Field(description="Place in the hash chain; null until sealed")
    prev_hash: str | None
    hash: str | None

    @classmethod
    def of(cls, record: AuditRecord) -> AuditRecordOut:
        return cls(
            id=record.id,
            created_at=record.created_at,
            actor=record.actor,
            ip=record.ip,
            request_id=record.request_id,
            action=record.action,
            object_type=record.object_type,
            object_id=record.object_id,
            before=json.loads(record.before_json) if record.before_json else None,
            after=json.loads(record.after_json) if record.after_json else None,
            position=record.seq,
            prev_hash=record.prev_hash,
            hash=record.hash,
        )
