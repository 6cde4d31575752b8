"""Tables of the accounts domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class App(Base):
    """A platform application (web site, mobile app, mini-program, back office)."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class ApiKey(Base):
    """An app's secret key; only its SHA-256 is kept, the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class User(Base):
    """A person: buyer, creator or staff member."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role in ('buyer', 'creator', 'admin', 'finance', 'support')", name="role_known"
        ),
        CheckConstraint("payment_password_failures >= 0", name="failures_not_negative"),
        Index("ix_users_app_id_id", "app_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    app_id: Mapped[str | None] = mapped_column(ForeignKey("apps.id"))
    phone: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    level: Mapped[str] = mapped_column(String(16), default="unverified")
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    payment_password_hash: Mapped[str | None] = mapped_column(String(255))
    payment_password_failures: Mapped[int] = mapped_column(default=0)
    payment_password_locked_until: Mapped[datetime | None]
    web_session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    """Raised by each logout from the pages: page sessions carry the one they began in."""
