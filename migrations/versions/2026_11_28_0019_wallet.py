"""wallet: balances and their transactions; orders.kind (purchase or top_up)

A buyer's knowledge-coin balance per currency (`wallets`, the row a wallet payment locks)
and every change of it (`wallet_transactions`). Money that staff paid into the wallet
before there were wallets (a failed refund resolved `wallet`) is already owed in the
ledger's `buyer_wallet:{user}` accounts; each such balance becomes a wallet, and each such
entry its transaction, so the wallet says what the ledger says.

Revision ID: 20261128_0019
Revises: 20261128_0018
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import knowpay.kit.db
from knowpay.kit.ids import new_id

revision: str = "20261128_0019"
down_revision: str | None = "20261128_0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PREFIX = "buyer_wallet:"


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="purchase", nullable=False)
        )
    if op.get_bind().dialect.name == "postgresql":  # SQLite cannot add one to a table
        op.create_check_constraint(
            op.f("ck_orders_kind_known"), "orders", "kind in ('purchase', 'top_up')"
        )
    op.create_table(
        "wallets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_minor >= 0", name=op.f("ck_wallets_balance_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_wallets_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
        sa.UniqueConstraint("user_id", "currency", name=op.f("uq_wallets_user_id_currency")),
    )
    op.create_table(
        "wallet_transactions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_minor", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", knowpay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "amount_minor <> 0", name=op.f("ck_wallet_transactions_amount_not_zero")
        ),
        sa.CheckConstraint(
            "balance_after_minor >= 0",
            name=op.f("ck_wallet_transactions_balance_after_not_negative"),
        ),
        sa.CheckConstraint(
            "kind in ('top_up', 'payment', 'refund', 'refund_resolution')",
            name=op.f("ck_wallet_transactions_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_transactions_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_transactions")),
        sa.UniqueConstraint(
            "kind", "reference", name=op.f("uq_wallet_transactions_kind_reference")
        ),
    )
    op.create_index(
        "ix_wallet_transactions_user_id_id", "wallet_transactions", ["user_id", "id"], unique=False
    )
    _wallets_from_the_ledger()


def _wallets_from_the_ledger() -> None:
    """Refunds resolved to the wallet before this revision: their credits, as transactions
    of wallets holding what the ledger owes."""
    bind = op.get_bind()
    credits = bind.execute(
        sa.text(
            "select p.account, p.currency, -p.amount_minor, e.refund_id, e.order_id, "
            "e.payment_id, e.created_at, u.app_id "
            "from postings p join journal_entries e on e.id = p.entry_id "
            "join users u on u.id = substr(p.account, :start) "
            "where p.account like :prefix and e.kind = 'refund_resolved' "
            "order by e.created_at, e.id"
        ),
        {"start": len(_PREFIX) + 1, "prefix": f"{_PREFIX}%"},
    ).all()
    wallets: dict[tuple[str, str], tuple[str, int]] = {}
    for account, currency, amount, refund_id, order_id, payment_id, created_at, app_id in credits:
        user_id = str(account)[len(_PREFIX) :]
        wallet_id, balance = wallets.get((user_id, currency), (new_id("wal"), 0))
        if (user_id, currency) not in wallets:
            bind.execute(
                sa.text(
                    "insert into wallets (id, user_id, app_id, currency, balance_minor, "
                    "created_at, updated_at) values (:id, :user_id, :app_id, :currency, 0, "
                    ":created_at, :created_at)"
                ),
                {
                    "id": wallet_id,
                    "user_id": user_id,
                    "app_id": app_id,
                    "currency": currency,
                    "created_at": created_at,
                },
            )
        balance += int(amount)
        wallets[(user_id, currency)] = (wallet_id, balance)
        bind.execute(
            sa.text(
                "insert into wallet_transactions (id, wallet_id, user_id, app_id, currency, "
                "kind, amount_minor, balance_after_minor, reference, order_id, payment_id, "
                "refund_id, created_at) values (:id, :wallet_id, :user_id, :app_id, :currency, "
                "'refund_resolution', :amount, :balance, :refund_id, :order_id, :payment_id, "
                ":refund_id, :created_at)"
            ),
            {
                "id": new_id("wtx"),
                "wallet_id": wallet_id,
                "user_id": user_id,
                "app_id": app_id,
                "currency": currency,
                "amount": int(amount),
                "balance": balance,
                "refund_id": refund_id,
                "order_id": order_id,
                "payment_id": payment_id,
                "created_at": created_at,
            },
        )
    for wallet_id, balance in wallets.values():
        bind.execute(
            sa.text("update wallets set balance_minor = :balance where id = :id"),
            {"id": wallet_id, "balance": balance},
        )


def downgrade() -> None:
    op.drop_index("ix_wallet_transactions_user_id_id", table_name="wallet_transactions")
    op.drop_table("wallet_transactions")
    op.drop_table("wallets")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_orders_kind_known"), "orders", type_="check")
    # In place (SQLite 3.35+ drops a column itself): a batch copy of `orders` would drop the
    # table that payments and order items refer to.
    op.execute("ALTER TABLE orders DROP COLUMN kind")
