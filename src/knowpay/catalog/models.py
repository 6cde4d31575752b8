"""Tables of the catalog domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from knowpay.kit.db import Base


class Product(Base):
    """Something the platform sells: a course, column, membership, e-book or live class."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint(
            "kind in ('course', 'column', 'membership', 'ebook', 'live')", name="kind_known"
        ),
        CheckConstraint("status in ('draft', 'published', 'archived')", name="status_known"),
        CheckConstraint("period_days is null or period_days > 0", name="period_positive"),
        CheckConstraint(
            "kind <> 'membership' or period_days is not null", name="membership_has_period"
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[str | None] = mapped_column(ForeignKey("apps.id"), index=True)
    creator_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    period_days: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    prices: Mapped[list[ProductPrice]] = relationship(
        back_populates="product",
        cascade="all, delete-orphan",
        order_by="ProductPrice.currency",
        lazy="selectin",
    )


class ProductPrice(Base):
    """The price of a product in one currency, in minor units."""

    __tablename__ = "product_prices"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    product_id: Mapped[str] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount_minor: Mapped[int]

    product: Mapped[Product] = relationship(back_populates="prices")
