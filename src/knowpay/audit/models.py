"""The audit log's one table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class AuditRecord(Base):
    """One staff action or money state change, written in the transaction that made it.

    Written unsealed (`seq`, `prev_hash`, `hash` empty); the sealer later gives it the next
    chain position and the hashes. Database triggers refuse DELETE, and refuse UPDATE except
    that one sealing of an unsealed record."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_object_type_object_id", "object_type", "object_id"),
        Index("ix_audit_records_actor_id", "actor", "id"),
        Index("ix_audit_records_action_id", "action", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    """`staff:usr_…`, `app:app_…`, `buyer:usr_…`, `gateway:alipay`, `system`, `cli:…`."""
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(160))
    before_json: Mapped[str | None] = mapped_column(Text)
    after_json: Mapped[str | None] = mapped_column(Text)

    # The seal, set once by the sealer.
    seq: Mapped[int | None] = mapped_column(unique=True)
    """The position in the chain, 1, 2, 3 … without gaps."""
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    sealed_at: Mapped[datetime | None]
