"""subscriptions: memberships renewed from the wallet, with dunning

One live subscription per buyer and product: `live_product_id` holds the product until the
subscription is canceled (then NULL, which the unique key does not compare), and a check
keeps the two in step.

Revision ID: 20261128_0021
Revises: 20261128_0020
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261128_0021"
down_revision: str | None = "20261128_0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("live_product_id", sa.String(length=40), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_days", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("current_period_end", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("renewals", sa.BigInteger(), nullable=False),
        sa.Column("failed_attempts", sa.BigInteger(), nullable=False),
        sa.Column("reminded_for", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("latest_order_id", sa.String(length=40), nullable=True),
        sa.Column("last_failure_code", sa.String(length=40), nullable=True),
        sa.Column("cancel_reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("canceled_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'canceled') = (live_product_id is null)",
            name=op.f("ck_subscriptions_live_unless_canceled"),
        ),
        sa.CheckConstraint(
            "status in ('active', 'past_due', 'canceled')",
            name=op.f("ck_subscriptions_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_subscriptions_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "user_id", "live_product_id", name=op.f("uq_subscriptions_user_id_live_product_id")
        ),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_subscriptions_app_id_id", ["app_id", "id"], unique=False)
        batch_op.create_index(
            "ix_subscriptions_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index("ix_subscriptions_user_id_id", ["user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_user_id_id")
        batch_op.drop_index("ix_subscriptions_status_next_attempt_at")
        batch_op.drop_index("ix_subscriptions_app_id_id")

    op.drop_table("subscriptions")
