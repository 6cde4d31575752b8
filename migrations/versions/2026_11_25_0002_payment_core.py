"""payment core

Revision ID: 20261125_0002
Revises: 20261125_0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db

revision: str = "20261125_0002"
down_revision: str | None = "20261125_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_PG_LEDGER_GUARDS = [
    # Postings and journal entries are append-only: corrections are new entries.
    """
    CREATE OR REPLACE FUNCTION knowpay_ledger_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION knowpay_ledger_append_only()
    """,
    """
    CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION knowpay_ledger_append_only()
    """,
    # Every entry balances to zero per currency, checked when the transaction commits.
    """
    CREATE OR REPLACE FUNCTION knowpay_entry_balanced() RETURNS trigger AS $$
    DECLARE
        unbalanced RECORD;
    BEGIN
        SELECT currency, SUM(amount_minor) AS total INTO unbalanced
        FROM postings WHERE entry_id = NEW.entry_id
        GROUP BY currency HAVING SUM(amount_minor) <> 0 LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'journal entry % does not balance in %: %',
                NEW.entry_id, unbalanced.currency, unbalanced.total
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION knowpay_entry_balanced()
    """,
]

_SQLITE_LEDGER_GUARDS = [
    f"""
    CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table}
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END
    """
    for table in ("postings", "journal_entries")
    for verb in ("update", "delete")
]


def _install_ledger_guards() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _PG_LEDGER_GUARDS if dialect == "postgresql" else _SQLITE_LEDGER_GUARDS:
        op.execute(statement)


def _drop_ledger_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS postings_balanced ON postings")
        op.execute("DROP TRIGGER IF EXISTS postings_append_only ON postings")
        op.execute("DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries")
        op.execute("DROP FUNCTION IF EXISTS knowpay_entry_balanced()")
        op.execute("DROP FUNCTION IF EXISTS knowpay_ledger_append_only()")
    else:
        for table in ("postings", "journal_entries"):
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("locked_until", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("response_status", sa.BigInteger(), nullable=True),
        sa.Column("response_headers", sa.Text(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "inbound_notifications",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=160), nullable=False),
        sa.Column("headers_json", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("received_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_notifications")),
        sa.UniqueConstraint(
            "gateway", "external_id", name=op.f("uq_inbound_notifications_gateway_external_id")
        ),
    )
    with op.batch_alter_table("inbound_notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_notifications_payment_id"), ["payment_id"], unique=False
        )

    op.create_table(
        "journal_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("memo", sa.String(length=200), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index("ix_journal_entries_order_id", ["order_id"], unique=False)
        batch_op.create_index(
            "ix_journal_entries_payment_id_kind", ["payment_id", "kind"], unique=False
        )

    op.create_table(
        "outbox_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=True),
        sa.Column("stream_key", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_events_id")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_events_app_id"), ["app_id"], unique=False)
        batch_op.create_index(
            "ix_outbox_events_pending", ["dispatched_at", "next_attempt_at", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_events_stream_key_seq", ["stream_key", "seq"], unique=False
        )

    op.create_table(
        "postings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor <> 0", name=op.f("ck_postings_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.id"], name=op.f("fk_postings_entry_id_journal_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index("ix_postings_account_currency", ["account", "currency"], unique=False)
        batch_op.create_index(batch_op.f("ix_postings_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index("ix_postings_order_id_account", ["order_id", "account"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("out_trade_no", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("paid_payment_id", sa.String(length=40), nullable=True),
        sa.Column("expires_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paid_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status in ('created', 'paid', 'partially_refunded', 'refunded', 'closed')",
            name=op.f("ck_orders_status_known"),
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_orders_amount_positive")),
        sa.CheckConstraint(
            "refunded_minor >= 0 and refunded_minor <= amount_minor",
            name=op.f("ck_orders_refund_within_amount"),
        ),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_orders_app_id_apps")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_orders_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("app_id", "out_trade_no", name=op.f("uq_orders_app_id_out_trade_no")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_app_id_id", ["app_id", "id"], unique=False)
        batch_op.create_index("ix_orders_status_expires_at", ["status", "expires_at"], unique=False)
        batch_op.create_index("ix_orders_user_id_id", ["user_id", "id"], unique=False)

    op.create_table(
        "entitlements",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("valid_from", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_accessed_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_entitlements_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_entitlements_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlements")),
        sa.UniqueConstraint(
            "user_id", "product_id", name=op.f("uq_entitlements_user_id_product_id")
        ),
    )
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.create_index("ix_entitlements_app_id_id", ["app_id", "id"], unique=False)

    op.create_table(
        "order_items",
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_days", sa.BigInteger(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "amount_minor = unit_amount_minor * quantity",
            name=op.f("ck_order_items_amount_is_unit_times_quantity"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_items_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_items_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_order_items_product_id_products")
        ),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("pk_order_items")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("gateway_trade_no", sa.String(length=128), nullable=True),
        sa.Column("action_json", sa.Text(), nullable=True),
        sa.Column("is_duplicate", sa.Boolean(), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("return_url", sa.String(length=2048), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("succeeded_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('pending', 'succeeded', 'failed', 'closed')",
            name=op.f("ck_payments_status_known"),
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_payments_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "channel", "gateway_trade_no", name=op.f("uq_payments_channel_gateway_trade_no")
        ),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_app_id_id", ["app_id", "id"], unique=False)
        batch_op.create_index("ix_payments_order_id_status", ["order_id", "status"], unique=False)
        batch_op.create_index(
            "ix_payments_status_created_at", ["status", "created_at"], unique=False
        )

    op.create_table(
        "entitlement_grants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("entitlement_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("valid_from", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", knowpay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entitlement_id"],
            ["entitlements.id"],
            name=op.f("fk_entitlement_grants_entitlement_id_entitlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlement_grants")),
        sa.UniqueConstraint(
            "payment_id",
            "entitlement_id",
            name=op.f("uq_entitlement_grants_payment_id_entitlement_id"),
        ),
    )
    with op.batch_alter_table("entitlement_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_entitlement_grants_entitlement_id"), ["entitlement_id"], unique=False
        )

    _install_ledger_guards()


def downgrade() -> None:
    _drop_ledger_guards()
    with op.batch_alter_table("entitlement_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entitlement_grants_entitlement_id"))

    op.drop_table("entitlement_grants")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_status_created_at")
        batch_op.drop_index("ix_payments_order_id_status")
        batch_op.drop_index("ix_payments_app_id_id")

    op.drop_table("payments")
    op.drop_table("order_items")
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.drop_index("ix_entitlements_app_id_id")

    op.drop_table("entitlements")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_user_id_id")
        batch_op.drop_index("ix_orders_status_expires_at")
        batch_op.drop_index("ix_orders_app_id_id")

    op.drop_table("orders")
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index("ix_postings_order_id_account")
        batch_op.drop_index(batch_op.f("ix_postings_entry_id"))
        batch_op.drop_index("ix_postings_account_currency")

    op.drop_table("postings")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_stream_key_seq")
        batch_op.drop_index("ix_outbox_events_pending")
        batch_op.drop_index(batch_op.f("ix_outbox_events_app_id"))

    op.drop_table("outbox_events")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_entries_payment_id_kind")
        batch_op.drop_index("ix_journal_entries_order_id")

    op.drop_table("journal_entries")
    with op.batch_alter_table("inbound_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_notifications_payment_id"))

    op.drop_table("inbound_notifications")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))

    op.drop_table("idempotency_keys")
