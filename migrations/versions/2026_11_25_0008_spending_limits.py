"""spending limits

Revision ID: 20261125_0008
Revises: 20261125_0007
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261125_0008"
down_revision: str | None = "20261125_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spending_limits",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("max_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("buyer_level", sa.String(length=16), nullable=True),
        sa.Column("app_id", sa.String(length=40), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "period in ('transaction', 'day', 'month')",
            name=op.f("ck_spending_limits_period_known"),
        ),
        sa.CheckConstraint(
            "scope in ('buyer', 'app', 'channel')", name=op.f("ck_spending_limits_scope_known")
        ),
        sa.CheckConstraint("max_amount_minor > 0", name=op.f("ck_spending_limits_max_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spending_limits")),
    )
    op.create_table(
        "limit_usage",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("limit_id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("used_minor", sa.BigInteger(), nullable=False),
        sa.Column("near_notified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("used_minor >= 0", name=op.f("ck_limit_usage_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["limit_id"],
            ["spending_limits.id"],
            name=op.f("fk_limit_usage_limit_id_spending_limits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limit_usage")),
        sa.UniqueConstraint(
            "limit_id",
            "subject",
            "period_key",
            name=op.f("uq_limit_usage_limit_id_subject_period_key"),
        ),
    )
    op.create_table(
        "limit_reservations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("usage_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("released_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["usage_id"],
            ["limit_usage.id"],
            name=op.f("fk_limit_reservations_usage_id_limit_usage"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limit_reservations")),
        sa.UniqueConstraint(
            "usage_id", "order_id", name=op.f("uq_limit_reservations_usage_id_order_id")
        ),
    )
    with op.batch_alter_table("limit_reservations", schema=None) as batch_op:
        batch_op.create_index("ix_limit_reservations_order_id", ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("limit_reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_limit_reservations_order_id")

    op.drop_table("limit_reservations")
    op.drop_table("limit_usage")
    op.drop_table("spending_limits")
