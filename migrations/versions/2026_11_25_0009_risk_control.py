"""risk control: rules, blacklist, attempts log, decisions

Revision ID: 20261125_0009
Revises: 20261125_0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261125_0009"
down_revision: str | None = "20261125_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_rules",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind in ('velocity', 'failed_streak', 'blacklist', 'amount_anomaly', 'new_account')",
            name=op.f("ck_risk_rules_kind_known"),
        ),
        sa.CheckConstraint("action in ('review', 'deny')", name=op.f("ck_risk_rules_action_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_rules")),
    )
    with op.batch_alter_table("risk_rules", schema=None) as batch_op:
        batch_op.create_index(
            "ix_risk_rules_enabled_priority", ["enabled", "priority"], unique=False
        )

    op.create_table(
        "risk_blacklist",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind in ('buyer', 'ip', 'device', 'payer_account')",
            name=op.f("ck_risk_blacklist_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_blacklist")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_risk_blacklist_kind_value")),
    )

    op.create_table(
        "risk_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "outcome in ('pending', 'succeeded', 'failed', 'denied')",
            name=op.f("ck_risk_attempts_outcome_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_attempts")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_risk_attempts_payment_id")),
    )
    with op.batch_alter_table("risk_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_risk_attempts_user_id_created_at", ["user_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_risk_attempts_client_ip_created_at", ["client_ip", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_risk_attempts_device_id_created_at", ["device_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_risk_attempts_user_id_outcome_currency",
            ["user_id", "outcome", "currency"],
            unique=False,
        )

    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reasons_json", sa.Text(), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("review_status", sa.String(length=16), nullable=True),
        sa.Column("reviewed_by", sa.String(length=80), nullable=True),
        sa.Column("reviewed_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "decision in ('allow', 'review', 'deny')",
            name=op.f("ck_risk_decisions_decision_known"),
        ),
        sa.CheckConstraint(
            "(decision = 'review' AND review_status in ('open', 'released', 'rejected')) "
            "OR (decision <> 'review' AND review_status IS NULL)",
            name=op.f("ck_risk_decisions_review_status_only_on_reviews"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_risk_decisions_payment_id")),
    )
    with op.batch_alter_table("risk_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_risk_decisions_review_status_id", ["review_status", "id"], unique=False
        )
        batch_op.create_index("ix_risk_decisions_user_id_id", ["user_id", "id"], unique=False)
        batch_op.create_index("ix_risk_decisions_decision_id", ["decision", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("risk_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_decisions_decision_id")
        batch_op.drop_index("ix_risk_decisions_user_id_id")
        batch_op.drop_index("ix_risk_decisions_review_status_id")
    op.drop_table("risk_decisions")
    with op.batch_alter_table("risk_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_attempts_user_id_outcome_currency")
        batch_op.drop_index("ix_risk_attempts_device_id_created_at")
        batch_op.drop_index("ix_risk_attempts_client_ip_created_at")
        batch_op.drop_index("ix_risk_attempts_user_id_created_at")
    op.drop_table("risk_attempts")
    op.drop_table("risk_blacklist")
    with op.batch_alter_table("risk_rules", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_rules_enabled_priority")
    op.drop_table("risk_rules")
