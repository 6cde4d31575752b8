"""risk_decisions: review_status 'closed', a review whose attempt closed before a decision

Revision ID: 20261127_0014
Revises: 20261127_0013
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "20261127_0014"
down_revision: str | None = "20261127_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ck_risk_decisions_review_status_only_on_reviews"
_RULE = (
    "(decision = 'review' AND review_status in ({statuses})) "
    "OR (decision <> 'review' AND review_status IS NULL)"
)


def _replace_rule(statuses: str) -> None:
    with op.batch_alter_table("risk_decisions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(_NAME), type_="check")
        batch_op.create_check_constraint(op.f(_NAME), _RULE.format(statuses=statuses))


def upgrade() -> None:
    _replace_rule("'open', 'released', 'rejected', 'closed'")


def downgrade() -> None:
    op.execute(
        "UPDATE risk_decisions SET review_status = 'open', reviewed_by = NULL, reviewed_at = NULL"
        " WHERE review_status = 'closed'"
    )
    _replace_rule("'open', 'released', 'rejected'")
