"""Tables of the payments domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class Payment(Base):
    """One attempt to pay an order through one channel. Its id is the out_trade_no the
    gateway sees, so every attempt is a distinct trade at the gateway."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("channel", "gateway_trade_no"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "status in ('pending', 'succeeded', 'failed', 'closed')", name="status_known"
        ),
        Index("ix_payments_order_id_status", "order_id", "status"),
        Index("ix_payments_app_id_id", "app_id", "id"),
        Index("ix_payments_status_created_at", "status", "created_at"),
        Index("ix_payments_needs_gateway_close", "needs_gateway_close", "next_gateway_close_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    app_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    gateway_trade_no: Mapped[str | None] = mapped_column(String(128))
    action_json: Mapped[str | None] = mapped_column(Text)
    is_duplicate: Mapped[bool] = mapped_column(default=False)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    return_url: Mapped[str | None] = mapped_column(String(2048))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    succeeded_at: Mapped[datetime | None]
    """When knowpay recorded the capture."""
    gateway_paid_at: Mapped[datetime | None]
    """When the gateway says the payer paid (its clock), where it says so."""
    query_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_query_at: Mapped[datetime | None]
    needs_gateway_close: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    held_for_review: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    """Risk control sent the attempt to staff review: the gateway hears of it when released."""
    gateway_close_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_gateway_close_at: Mapped[datetime | None]
    duplicate_refund_id: Mapped[str | None] = mapped_column(String(40))
