"""Tables of the subscriptions domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class Subscription(Base):
    """A buyer's membership renewed from their wallet at the end of each period, as they
    authorised with their payment password. Its periods are the membership's entitlement:
    each renewal is an order paid from the wallet, whose capture extends it."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        # One live subscription per buyer and product: an ended one frees the product.
        UniqueConstraint("user_id", "live_product_id"),
        CheckConstraint("status in ('active', 'past_due', 'canceled')", name="status_known"),
        CheckConstraint(
            "(status = 'canceled') = (live_product_id is null)", name="live_unless_canceled"
        ),
        Index("ix_subscriptions_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_subscriptions_app_id_id", "app_id", "id"),
        Index("ix_subscriptions_user_id_id", "user_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    live_product_id: Mapped[str | None] = mapped_column(String(40))
    """The product while the subscription lives, None once canceled (the unique key)."""
    amount_minor: Mapped[int]
    """The price per period the buyer agreed to: the most a renewal may charge."""
    currency: Mapped[str] = mapped_column(String(3))
    period_days: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    cancel_at_period_end: Mapped[bool]
    current_period_end: Mapped[datetime]
    """When the access paid for so far ends (the membership's `valid_until`)."""
    next_attempt_at: Mapped[datetime | None]
    """When the worker next acts: a renewal's charge, a dunning retry, or the end of a
    subscription canceled at its period's end. None once canceled."""
    renewals: Mapped[int]
    """Periods renewed so far (the first charge, when subscribing, not counted)."""
    failed_attempts: Mapped[int]
    """Failed tries of the renewal now due (0 when none is failing)."""
    reminded_for: Mapped[datetime | None]
    """The period end whose renewal the app was last told of (one reminder a period)."""
    latest_order_id: Mapped[str | None] = mapped_column(String(40))
    last_failure_code: Mapped[str | None] = mapped_column(String(40))
    cancel_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    canceled_at: Mapped[datetime | None]
