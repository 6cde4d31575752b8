"""entitlement_grants: days bought and revoked_at, so a refund takes back one payment's grant

A refund used to revoke a whole entitlement by its latest payment. Each grant now says how
many days it bought (None: for life) and when a refund took it back, and the entitlement is
what its grants still in force give.

Existing grants: `days` is the length of the period they added (a grant that added nothing
to a lifetime access was recorded as for life, and stays so); grants of a fully refunded
order are taken back when the order was. Entitlements are left as they are: one the old
rule revoked by its latest payment while an earlier one still stood stays revoked until the
buyer's next purchase or refund of it rebuilds it from its grants.

Revision ID: 20261127_0013
Revises: 20261127_0012
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261127_0013"
down_revision: str | None = "20261127_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAY_S = 86_400


def upgrade() -> None:
    with op.batch_alter_table("entitlement_grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("days", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("revoked_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True)
        )
    _backfill_days()
    _backfill_revoked()


def _backfill_days() -> None:
    grants = sa.table(
        "entitlement_grants",
        sa.column("id", sa.String),
        sa.column("valid_from", knowpay.kit.db.UTCDateTime(timezone=True)),
        sa.column("valid_until", knowpay.kit.db.UTCDateTime(timezone=True)),
        sa.column("days", sa.BigInteger),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(grants.c.id, grants.c.valid_from, grants.c.valid_until).where(
            grants.c.valid_until.is_not(None)
        )
    ).all()
    for grant_id, valid_from, valid_until in rows:
        days = round((valid_until - valid_from).total_seconds() / _DAY_S)
        connection.execute(grants.update().where(grants.c.id == grant_id).values(days=days))


def _backfill_revoked() -> None:
    op.execute(
        "UPDATE entitlement_grants SET revoked_at = (SELECT o.updated_at FROM orders o"
        " WHERE o.id = entitlement_grants.order_id)"
        " WHERE revoked_at IS NULL"
        " AND order_id IN (SELECT id FROM orders WHERE status = 'refunded')"
    )


def downgrade() -> None:
    with op.batch_alter_table("entitlement_grants", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("days")
