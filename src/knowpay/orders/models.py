"""Tables of the orders domain."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from knowpay.kit.db import Base


class OrderKind(StrEnum):
    PURCHASE = "purchase"
    """Content from the catalog: paid, it grants entitlements and is the platform's revenue."""
    TOP_UP = "top_up"
    """Coins for the buyer's wallet: paid, the balance grows; the platform owes it to them."""


class Order(Base):
    """A buyer's order; `amount_minor` is computed from the catalog, never taken from a caller."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("app_id", "out_trade_no"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "refunded_minor >= 0 and refunded_minor <= amount_minor", name="refund_within_amount"
        ),
        CheckConstraint(
            "status in ('created', 'paid', 'partially_refunded', 'refunded', 'closed')",
            name="status_known",
        ),
        CheckConstraint("kind in ('purchase', 'top_up')", name="kind_known"),
        Index("ix_orders_app_id_id", "app_id", "id"),
        Index("ix_orders_user_id_id", "user_id", "id"),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="purchase", server_default="purchase")
    """`purchase` (catalog items, paid for content) or `top_up` (coins for the buyer's wallet,
    no items)."""
    fingerprint: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int]
    refunded_minor: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(24))
    subject: Mapped[str] = mapped_column(String(256))
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    paid_payment_id: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closing_since: Mapped[datetime | None]
    """Set while a close asks the gateways (no lock is held then): no payment may start."""
    reminded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order",
        order_by="OrderItem.line_no",
        lazy="selectin",
        cascade="all, delete-orphan",
    )


class OrderItem(Base):
    """A line of an order, with the product's price and terms as they were when ordered."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "amount_minor = unit_amount_minor * quantity", name="amount_is_unit_times_quantity"
        ),
    )

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    period_days: Mapped[int | None]
    quantity: Mapped[int]
    unit_amount_minor: Mapped[int]
    amount_minor: Mapped[int]
    creator_id: Mapped[str | None] = mapped_column(String(40))
    """The product's creator when ordered (their share of the line is owed to them)."""
    creator_share_bps: Mapped[int | None]
    """The creator's share in force when ordered, in basis points."""

    order: Mapped[Order] = relationship(back_populates="items")
