"""Tables of the entitlements domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from knowpay.kit.db import Base


class Entitlement(Base):
    """A buyer's access to a product; `valid_until` None means for life."""

    __tablename__ = "entitlements"
    __table_args__ = (
        UniqueConstraint("user_id", "product_id"),
        Index("ix_entitlements_app_id_id", "app_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    app_id: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    payment_id: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    first_accessed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EntitlementGrant(Base):
    """Each payment that granted or extended an entitlement (the history behind it). The
    entitlement is what its grants still in force give, applied in the order they were paid:
    a refund takes back one payment's grants, not the whole access."""

    __tablename__ = "entitlement_grants"
    __table_args__ = (UniqueConstraint("payment_id", "entitlement_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    entitlement_id: Mapped[str] = mapped_column(ForeignKey("entitlements.id"), index=True)
    payment_id: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    days: Mapped[int | None]
    """What the payment bought: days of access (period × quantity), None for life."""
    revoked_at: Mapped[datetime | None]
    """When a refund took this grant back."""
    created_at: Mapped[datetime]
