"""refunds

Revision ID: 20261125_0005
Revises: 20261125_0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261125_0005"
down_revision: str | None = "20261125_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("reason_text", sa.String(length=500), nullable=True),
        sa.Column("requested_by", sa.String(length=80), nullable=False),
        sa.Column("out_refund_no", sa.String(length=64), nullable=True),
        sa.Column("gateway_attempts", sa.BigInteger(), nullable=False),
        sa.Column("gateway_refund_no", sa.String(length=128), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("rejection_reason", sa.String(length=500), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("needs_gateway_call", sa.Boolean(), nullable=False),
        sa.Column("next_check_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("check_attempts", sa.BigInteger(), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("succeeded_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('pending_approval', 'processing', 'succeeded', 'failed', 'rejected')",
            name=op.f("ck_refunds_status_known"),
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_refunds_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("out_refund_no", name=op.f("uq_refunds_out_refund_no")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index("ix_refunds_app_id_id", ["app_id", "id"], unique=False)
        batch_op.create_index("ix_refunds_order_id_status", ["order_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index(
            "ix_refunds_status_next_check_at", ["status", "next_check_at"], unique=False
        )
        batch_op.create_index("ix_refunds_user_id_id", ["user_id", "id"], unique=False)

    op.create_table(
        "refund_timeline",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("refund_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_refund_timeline_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_timeline")),
    )
    with op.batch_alter_table("refund_timeline", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_refund_timeline_refund_id"), ["refund_id"], unique=False
        )

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicate_refund_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("duplicate_refund_id")

    with op.batch_alter_table("refund_timeline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refund_timeline_refund_id"))

    op.drop_table("refund_timeline")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_user_id_id")
        batch_op.drop_index("ix_refunds_status_next_check_at")
        batch_op.drop_index(batch_op.f("ix_refunds_payment_id"))
        batch_op.drop_index("ix_refunds_order_id_status")
        batch_op.drop_index("ix_refunds_app_id_id")

    op.drop_table("refunds")
