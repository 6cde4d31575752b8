"""Tables of the refunds domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class Refund(Base):
    """Money going back to a buyer for one captured payment."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "status in ('pending_approval', 'processing', 'succeeded', 'failed', 'rejected')",
            name="status_known",
        ),
        Index("ix_refunds_order_id_status", "order_id", "status"),
        Index("ix_refunds_app_id_id", "app_id", "id"),
        Index("ix_refunds_user_id_id", "user_id", "id"),
        Index("ix_refunds_status_next_check_at", "status", "next_check_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    app_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(String(32))
    reason_text: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(80))
    out_refund_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    gateway_attempts: Mapped[int] = mapped_column(default=0)
    gateway_refund_no: Mapped[str | None] = mapped_column(String(128))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    rejection_reason: Mapped[str | None] = mapped_column(String(500))
    resolution: Mapped[str | None] = mapped_column(String(16))
    needs_gateway_call: Mapped[bool] = mapped_column(default=False)
    next_check_at: Mapped[datetime | None]
    check_attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    succeeded_at: Mapped[datetime | None]


class RefundTimelineEntry(Base):
    """One step of a refund's story, as the buyer sees it."""

    __tablename__ = "refund_timeline"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    refund_id: Mapped[str] = mapped_column(ForeignKey("refunds.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    step: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime]
