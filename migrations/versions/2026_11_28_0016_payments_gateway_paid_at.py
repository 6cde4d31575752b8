"""payments: gateway_paid_at, when the gateway says the payer paid

`succeeded_at` is when knowpay recorded the capture; a notification that comes late, or a
capture found by the active query, is recorded after the payer paid. The gateway's own
time (Alipay `gmt_payment` / `send_pay_date`, WeChat Pay `success_time`, Stripe's charge
`created` …) is kept beside it for reconciliation and disputes; null where the gateway does
not say, and for captures recorded before this revision.

Revision ID: 20261128_0016
Revises: 20261127_0015
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261128_0016"
down_revision: str | None = "20261127_0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gateway_paid_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    # A plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): batch mode would copy the table, and
    # SQLite, with foreign keys on, refuses to drop the payments that refunds refer to.
    op.drop_column("payments", "gateway_paid_at")
