"""The transactional outbox: events written in the same transaction as the change they tell of."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class OutboxEvent(Base):
    """One event to deliver at least once; `seq` orders events, per `stream_key` strictly."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_pending", "dispatched_at", "next_attempt_at", "seq"),
        Index("ix_outbox_events_stream_key_seq", "stream_key", "seq"),
        Index("ix_outbox_events_app_id_id", "app_id", "id"),  # an app's events, by id
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str | None] = mapped_column(String(40))
    stream_key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
