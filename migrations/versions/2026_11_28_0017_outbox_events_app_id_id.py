"""outbox_events: an index on (app_id, id) for the app's event list

`GET /v1/events` pages an app's events newest first by id; the index on app_id alone
(used by no query) made each page sort every event of the app. The new index serves the
list and its cursor, and takes the old one's place, so an event costs no extra index write.

Revision ID: 20261128_0017
Revises: 20261128_0016
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "20261128_0017"
down_revision: str | None = "20261128_0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_events_app_id_id", "outbox_events", ["app_id", "id"])
    op.drop_index("ix_outbox_events_app_id", table_name="outbox_events")


def downgrade() -> None:
    op.create_index("ix_outbox_events_app_id", "outbox_events", ["app_id"])
    op.drop_index("ix_outbox_events_app_id_id", table_name="outbox_events")
