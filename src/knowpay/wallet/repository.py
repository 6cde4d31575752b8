"""Every SQL statement of the wallet. Never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowpay.kit.db import insert_unless_present
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams, page_of
from knowpay.wallet.models import Wallet, WalletTransaction


def locked(
    session: Session, user_id: str, app_id: str | None, currency: str, now: datetime
) -> Wallet:
    """The buyer's wallet in a currency, made empty on first use, locked for the transaction
    (two first top-ups at once both insert nothing twice: the unique row is shared)."""
    insert_unless_present(
        session,
        Wallet,
        {
            "id": new_id("wal"),
            "user_id": user_id,
            "app_id": app_id,
            "currency": currency,
            "balance_minor": 0,
            "created_at": now,
            "updated_at": now,
        },
        unique=("user_id", "currency"),
    )
    statement = (
        select(Wallet)
        .where(Wallet.user_id == user_id, Wallet.currency == currency)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(statement).one()


def of_user(session: Session, user_id: str) -> list[Wallet]:
    return list(
        session.scalars(select(Wallet).where(Wallet.user_id == user_id).order_by(Wallet.currency))
    )


def transactions(
    session: Session, user_id: str, params: PageParams, currency: str | None
) -> tuple[list[WalletTransaction], bool]:
    statement = select(WalletTransaction).where(WalletTransaction.user_id == user_id)
    if currency is not None:
        statement = statement.where(WalletTransaction.currency == currency)
    return page_of(session, statement, WalletTransaction.id, params)


def every_wallet(session: Session) -> list[Wallet]:
    return list(session.scalars(select(Wallet).order_by(Wallet.id)))


def transaction_totals(session: Session) -> dict[str, int]:
    """Per wallet id, the sum of its transactions."""
    rows = session.execute(
        select(WalletTransaction.wallet_id, func.sum(WalletTransaction.amount_minor)).group_by(
            WalletTransaction.wallet_id
        )
    ).all()
    return {str(wallet_id): int(total) for wallet_id, total in rows}
