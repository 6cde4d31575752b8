"""webhook_endpoints: previous_secrets_json, every earlier secret still in its grace period

An endpoint kept one previous secret, so rotating twice within a grace period stopped the
first old secret at once. It now keeps each earlier secret still signing, each with its own
expiry: JSON [{"sealed": …, "expires_at": RFC 3339}], sealed as before (the values move
unchanged, their sealing context is the endpoint's). The previous secret of an endpoint
moves into the list; downgrading keeps the one that signs longest.

Revision ID: 20261127_0015
Revises: 20261127_0014
Create Date: 2026-11-27
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261127_0015"
down_revision: str | None = "20261127_0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_endpoints = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.String),
    sa.column("previous_secret_sealed", sa.Text),
    sa.column("previous_secret_expires_at", knowpay.kit.db.UTCDateTime(timezone=True)),
    sa.column("previous_secrets_json", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("previous_secrets_json", sa.Text(), nullable=False, server_default="[]")
        )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            _endpoints.c.id,
            _endpoints.c.previous_secret_sealed,
            _endpoints.c.previous_secret_expires_at,
        ).where(
            _endpoints.c.previous_secret_sealed.is_not(None),
            _endpoints.c.previous_secret_expires_at.is_not(None),
        )
    ).all()
    for endpoint_id, sealed, expires_at in rows:
        kept = [{"sealed": sealed, "expires_at": expires_at.isoformat()}]
        connection.execute(
            _endpoints.update()
            .where(_endpoints.c.id == endpoint_id)
            .values(previous_secrets_json=json.dumps(kept))
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_sealed")


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_sealed", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "previous_secret_expires_at",
                knowpay.kit.db.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_endpoints.c.id, _endpoints.c.previous_secrets_json).where(
            _endpoints.c.previous_secrets_json != "[]"
        )
    ).all()
    for endpoint_id, kept_json in rows:
        kept = json.loads(kept_json)
        if not kept:
            continue
        last = max(kept, key=lambda item: item["expires_at"])
        connection.execute(
            _endpoints.update()
            .where(_endpoints.c.id == endpoint_id)
            .values(
                previous_secret_sealed=last["sealed"],
                previous_secret_expires_at=datetime.fromisoformat(last["expires_at"]),
            )
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secrets_json")
