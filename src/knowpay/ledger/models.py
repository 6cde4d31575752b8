"""Tables of the ledger. Postings are never updated or deleted (the database refuses it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class JournalEntry(Base):
    """One money event; its postings sum to zero per currency."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        Index("ix_journal_entries_order_id", "order_id"),
        Index("ix_journal_entries_payment_id_kind", "payment_id", "kind"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    refund_id: Mapped[str | None] = mapped_column(String(40))
    memo: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Posting(Base):
    """A signed amount on one account: debits positive, credits negative."""

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="amount_not_zero"),
        Index("ix_postings_account_currency", "account", "currency"),
        Index("ix_postings_order_id_account", "order_id", "account"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    entry_id: Mapped[str] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(80))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int]
    order_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
