"""Tables of the wallet domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class Wallet(Base):
    """A buyer's balance in one currency. The row is what a wallet payment locks, so two
    payments at once cannot spend the same coins; the ledger's `buyer_wallet:{user}` account
    says the same amount (`knowpay ledger check` compares them)."""

    __tablename__ = "wallets"
    __table_args__ = (
        UniqueConstraint("user_id", "currency"),
        CheckConstraint("balance_minor >= 0", name="balance_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    app_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WalletTransaction(Base):
    """One change of a wallet's balance, never updated: credits positive, debits negative.
    `reference` is the object that made it (the payment of a top-up or a wallet payment, the
    refund paid back), unique per kind, so nothing moves a balance twice."""

    __tablename__ = "wallet_transactions"
    __table_args__ = (
        UniqueConstraint("kind", "reference"),
        CheckConstraint("amount_minor <> 0", name="amount_not_zero"),
        CheckConstraint("balance_after_minor >= 0", name="balance_after_not_negative"),
        CheckConstraint(
            "kind in ('top_up', 'payment', 'refund', 'refund_resolution')", name="kind_known"
        ),
        Index("ix_wallet_transactions_user_id_id", "user_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"))
    user_id: Mapped[str] = mapped_column(String(40))
    app_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(24))
    amount_minor: Mapped[int]
    balance_after_minor: Mapped[int]
    reference: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    refund_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
