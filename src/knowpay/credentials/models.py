"""The gateway credentials table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class GatewayCredential(Base):
    """One settings field of one gateway (a private key, an API v3 key, an app id …), sealed
    with the secret box and bound to its gateway and field."""

    __tablename__ = "gateway_credentials"
    __table_args__ = (UniqueConstraint("gateway", "field"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(64))
    value_sealed: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(40))
    """`sha256:` and the first 12 hex digits of the value's SHA-256: tells values apart."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
