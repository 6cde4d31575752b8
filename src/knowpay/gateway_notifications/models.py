"""The notification inbox: every notification is stored, once per (gateway, external id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class InboundNotification(Base):
    """A notification as received: raw bytes, whether it verified, and what came of it."""

    __tablename__ = "inbound_notifications"
    __table_args__ = (UniqueConstraint("gateway", "external_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(160))
    headers_json: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    verified: Mapped[bool]
    outcome: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(500))
    payment_id: Mapped[str | None] = mapped_column(String(40), index=True)
    received_at: Mapped[datetime]
