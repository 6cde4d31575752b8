"""Migration 20261128_0019: money finance resolved to the wallet before wallets existed
becomes a wallet holding what the ledger owes, with its transactions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from knowpay.accounts.models import App, User
from knowpay.kit.migrations import upgrade
from knowpay.ledger.models import JournalEntry, Posting
from knowpay.wallet import service as wallet
from knowpay.wallet.models import Wallet, WalletTransaction


def test_wallets_are_made_from_earlier_resolutions_to_the_wallet(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "20261128_0018")
    when = datetime(2026, 11, 1, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        session.execute(insert(App), [{"id": "app_1", "name": "web", "created_at": when}])
        session.execute(
            insert(User),
            [
                {
                    "id": "usr_1",
                    "email": "b@example.com",
                    "password_hash": "x",
                    "role": "buyer",
                    "app_id": "app_1",
                    "locale": "zh_CN",
                    "level": "unverified",
                    "created_at": when,
                    "payment_password_failures": 0,
                }
            ],
        )
        for n, amount in enumerate((3000, 1500), start=1):
            session.execute(
                insert(JournalEntry),
                [
                    {
                        "id": f"je_{n}",
                        "kind": "refund_resolved",
                        "order_id": f"ord_{n}",
                        "payment_id": f"pay_{n}",
                        "refund_id": f"re_{n}",
                        "created_at": when,
                    }
                ],
            )
            session.execute(
                insert(Posting),
                [
                    {
                        "entry_id": f"je_{n}",
                        "account": "platform_revenue",
                        "currency": "CNY",
                        "amount_minor": amount,
                        "order_id": f"ord_{n}",
                        "created_at": when,
                    },
                    {
                        "entry_id": f"je_{n}",
                        "account": "buyer_wallet:usr_1",
                        "currency": "CNY",
                        "amount_minor": -amount,
                        "order_id": f"ord_{n}",
                        "created_at": when,
                    },
                ],
            )
    upgrade(engine)
    with Session(engine) as session:
        [made] = session.scalars(select(Wallet)).all()
        assert (made.user_id, made.app_id, made.balance_minor) == ("usr_1", "app_1", 4500)
        changes = session.scalars(select(WalletTransaction).order_by(WalletTransaction.reference))
        assert [(c.kind, c.amount_minor, c.refund_id) for c in changes] == [
            ("refund_resolution", 3000, "re_1"),
            ("refund_resolution", 1500, "re_2"),
        ]
        assert wallet.check(session) == []
    engine.dispose()
