"""settlements: creators' monthly statements; order_items keep the creator and share

An order's lines now remember whose product each was and the creator's share in force when
the order was made (as they remember the price), so a later change of either does not move
money already earned. Lines of earlier orders have neither: their sales owe no creator.

Revision ID: 20261128_0020
Revises: 20261128_0019
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261128_0020"
down_revision: str | None = "20261128_0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("creator_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("creator_share_bps", sa.BigInteger(), nullable=True))
    op.create_table(
        "settlements",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("creator_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("earned_minor", sa.BigInteger(), nullable=False),
        sa.Column("reversed_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paid_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_by", sa.String(length=80), nullable=True),
        sa.Column("payout_reference", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status in ('open', 'paid', 'superseded', 'nothing_due')",
            name=op.f("ck_settlements_status_known"),
        ),
        sa.CheckConstraint(
            "status <> 'paid' or amount_minor > 0", name=op.f("ck_settlements_paid_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("fk_settlements_creator_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
        sa.UniqueConstraint(
            "creator_id",
            "currency",
            "period_start",
            name=op.f("uq_settlements_creator_id_currency_period_start"),
        ),
    )
    op.create_index("ix_settlements_status_id", "settlements", ["status", "id"], unique=False)
    op.create_index(
        "ix_settlements_creator_id_id", "settlements", ["creator_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_settlements_creator_id_id", table_name="settlements")
    op.drop_index("ix_settlements_status_id", table_name="settlements")
    op.drop_table("settlements")
    # In place (SQLite 3.35+): a batch copy would drop a table payments refer to.
    op.execute("ALTER TABLE order_items DROP COLUMN creator_share_bps")
    op.execute("ALTER TABLE order_items DROP COLUMN creator_id")
