"""Response bodies of the wallet."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from knowpay.wallet.models import Wallet, WalletTransaction


class WalletBalance(BaseModel):
    amount: int = Field(description="What the buyer may spend, in the currency's minor units")
    currency: str


class WalletOut(BaseModel):
    object: Literal["wallet"] = "wallet"
    user_id: str
    balances: list[WalletBalance] = Field(
        description="One per currency the buyer ever held; empty before the first top-up"
    )

    @classmethod
    def of(cls, user_id: str, wallets: list[Wallet]) -> WalletOut:
        return cls(
            user_id=user_id,
            balances=[WalletBalance(amount=w.balance_minor, currency=w.currency) for w in wallets],
        )


class WalletTransactionOut(BaseModel):
    object: Literal["wallet_transaction"] = "wallet_transaction"
    id: str
    user_id: str
    kind: Literal["top_up", "payment", "refund", "refund_resolution"] = Field(
        description="top_up: a paid top-up order; payment: coins spent on an order; refund: "
        "a wallet payment refunded; refund_resolution: a refund the gateway refused, paid "
        "into the wallet by staff"
    )
    amount: int = Field(description="Credits positive, debits negative (minor units)")
    currency: str
    balance_after: int
    order_id: str | None
    payment_id: str | None
    refund_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, change: WalletTransaction) -> WalletTransactionOut:
        return cls(
            id=change.id,
            user_id=change.user_id,
            kind=change.kind,
            amount=change.amount_minor,
            currency=change.currency,
            balance_after=change.balance_after_minor,
            order_id=change.order_id,
            payment_id=change.payment_id,
            refund_id=change.refund_id,
            created_at=change.created_at,
        )
