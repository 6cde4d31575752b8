"""reconciliation: runs of a gateway's daily bill, and the discrepancies they found

Revision ID: 20261128_0018
Revises: 20261128_0017
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261128_0018"
down_revision: str | None = "20261128_0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("schedule_key", sa.String(length=80), nullable=True),
        sa.Column("started_by", sa.String(length=80), nullable=False),
        sa.Column("started_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("bill_lines", sa.BigInteger(), nullable=False),
        sa.Column("matched", sa.BigInteger(), nullable=False),
        sa.Column("discrepancies", sa.BigInteger(), nullable=False),
        sa.Column("totals_json", sa.Text(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint("schedule_key", name=op.f("uq_reconciliation_runs_schedule_key")),
    )
    op.create_index(
        "ix_reconciliation_runs_gateway_bill_date",
        "reconciliation_runs",
        ["gateway", "bill_date"],
        unique=False,
    )
    op.create_table(
        "reconciliation_discrepancies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("line_kind", sa.String(length=16), nullable=False),
        sa.Column("out_trade_no", sa.String(length=128), nullable=True),
        sa.Column("gateway_trade_no", sa.String(length=128), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("gateway_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("knowpay_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=80), nullable=True),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_discrepancies_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_discrepancies")),
    )
    op.create_index(
        op.f("ix_reconciliation_discrepancies_run_id"),
        "reconciliation_discrepancies",
        ["run_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_reconciliation_discrepancies_run_id"), table_name="reconciliation_discrepancies"
    )
    op.drop_table("reconciliation_discrepancies")
    op.drop_index("ix_reconciliation_runs_gateway_bill_date", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
