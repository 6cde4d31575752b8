"""Tables of spending limits, their per-period usage and each order's reservations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class SpendingLimit(Base):
    """The most that may be paid per transaction, day or month in one currency."""

    __tablename__ = "spending_limits"
    __table_args__ = (
        CheckConstraint("scope in ('buyer', 'app', 'channel')", name="scope_known"),
        CheckConstraint("period in ('transaction', 'day', 'month')", name="period_known"),
        CheckConstraint("max_amount_minor > 0", name="max_positive"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    """buyer: each buyer's own spending; app: all of an app's sales; channel: one channel's."""
    period: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    max_amount_minor: Mapped[int]
    buyer_level: Mapped[str | None] = mapped_column(String(16))
    """Buyer limits only: buyers of this level (null: every buyer)."""
    app_id: Mapped[str | None] = mapped_column(String(40))
    """Only this app's orders (null: every app)."""
    channel: Mapped[str | None] = mapped_column(String(32))
    """Channel limits: this channel (null: each channel on its own)."""
    description: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LimitUsage(Base):
    """How much of a limit one subject used in one period: the row two racing payments lock."""

    __tablename__ = "limit_usage"
    __table_args__ = (
        UniqueConstraint("limit_id", "subject", "period_key"),
        CheckConstraint("used_minor >= 0", name="used_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    limit_id: Mapped[str] = mapped_column(ForeignKey("spending_limits.id"))
    subject: Mapped[str] = mapped_column(String(64))
    period_key: Mapped[str] = mapped_column(String(16))
    used_minor: Mapped[int] = mapped_column(default=0)
    near_notified: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    updated_at: Mapped[datetime]


class LimitReservation(Base):
    """An order's amount counted in a usage row: kept when paid, given back when it closes."""

    __tablename__ = "limit_reservations"
    __table_args__ = (
        UniqueConstraint("usage_id", "order_id"),
        Index("ix_limit_reservations_order_id", "order_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    usage_id: Mapped[str] = mapped_column(ForeignKey("limit_usage.id"))
    order_id: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int]
    created_at: Mapped[datetime]
    released_at: Mapped[datetime | None]
