"""audit log and gateway credentials

Revision ID: 20261125_0007
Revises: 20261125_0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261125_0007"
down_revision: str | None = "20261125_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only: no DELETE, and no UPDATE except the sealer setting the seal
# (seq, prev_hash, hash, sealed_at) once on an unsealed record, every other column unchanged.
_IMMUTABLE = (
    "id",
    "created_at",
    "actor",
    "ip",
    "request_id",
    "action",
    "object_type",
    "object_id",
    "before_json",
    "after_json",
)
_SEALING_ONLY = (
    "OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL "
    "AND NEW.hash IS NOT NULL AND NEW.sealed_at IS NOT NULL"
)

_PG_AUDIT_GUARDS = [
    f"""
    CREATE OR REPLACE FUNCTION knowpay_audit_append_only() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND {_SEALING_ONLY}
           AND ({", ".join(f"NEW.{c}" for c in _IMMUTABLE)})
               IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in _IMMUTABLE)}) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION knowpay_audit_append_only()
    """,
]

_SQLITE_AUDIT_GUARDS = [
    """
    CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """,
    f"""
    CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
    WHEN NOT ({_SEALING_ONLY} AND {" AND ".join(f"NEW.{c} IS OLD.{c}" for c in _IMMUTABLE)})
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """,
]


def _install_audit_guards() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _PG_AUDIT_GUARDS if dialect == "postgresql" else _SQLITE_AUDIT_GUARDS:
        op.execute(statement)


def _drop_audit_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records")
        op.execute("DROP FUNCTION IF EXISTS knowpay_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_records_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_records_no_update")


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=160), nullable=False),
        sa.Column("before_json", sa.Text(), nullable=True),
        sa.Column("after_json", sa.Text(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.Column("sealed_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_records_seq")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_records_action_id", ["action", "id"], unique=False)
        batch_op.create_index("ix_audit_records_actor_id", ["actor", "id"], unique=False)
        batch_op.create_index(
            "ix_audit_records_object_type_object_id", ["object_type", "object_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_records_request_id"), ["request_id"], unique=False
        )
    _install_audit_guards()

    op.create_table(
        "gateway_credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("value_sealed", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_credentials")),
        sa.UniqueConstraint("gateway", "field", name=op.f("uq_gateway_credentials_gateway_field")),
    )


def downgrade() -> None:
    op.drop_table("gateway_credentials")
    _drop_audit_guards()
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_request_id"))
        batch_op.drop_index("ix_audit_records_object_type_object_id")
        batch_op.drop_index("ix_audit_records_actor_id")
        batch_op.drop_index("ix_audit_records_action_id")
    op.drop_table("audit_records")
