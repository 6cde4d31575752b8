"""Tables of the settlements domain."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class Settlement(Base):
    """What the platform owes a creator in one currency at the end of a month: their share
    of sales, less refunds' reversals and earlier payouts (the ledger's `creator_payable`
    balance then). A newer statement takes the place of an unpaid older one, so at most one
    is open per creator and currency, and paying it clears the balance it states."""

    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("creator_id", "currency", "period_start"),
        CheckConstraint(
            "status in ('open', 'paid', 'superseded', 'nothing_due')", name="status_known"
        ),
        CheckConstraint("status <> 'paid' or amount_minor > 0", name="paid_amount_positive"),
        Index("ix_settlements_status_id", "status", "id"),
        Index("ix_settlements_creator_id_id", "creator_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    creator_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    app_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[date]
    period_end: Mapped[date]
    """The first day after the period (the period is [start, end) in the settings' zone)."""
    earned_minor: Mapped[int]
    """The creator's share of sales in the period."""
    reversed_minor: Mapped[int]
    """What refunds in the period took back of earlier shares."""
    amount_minor: Mapped[int]
    """What is owed at the period's end, all earlier months and payouts included; zero or
    less: nothing to pay (a refund after a payout leaves the creator owing, set off later)."""
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    paid_by: Mapped[str | None] = mapped_column(String(80))
    payout_reference: Mapped[str | None] = mapped_column(String(200))
