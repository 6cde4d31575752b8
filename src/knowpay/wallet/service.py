"""The knowledge-coin wallet: balances moved under the wallet row's lock, each change kept
as a transaction. The flows that move money post the ledger entry beside it (payments for a
top-up or a wallet payment, refunds for money paid back); `check` proves the two agree.
Never commits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from knowpay.kit.config import WalletSettings
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.pagination import PageParams
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger import service as ledger
from knowpay.ledger.service import Violation
from knowpay.wallet import repository
from knowpay.wallet.errors import (
    InsufficientBalance,
    TopUpOutOfRange,
    WalletBalanceCapReached,
    WalletCurrencyNotSupported,
)
from knowpay.wallet.models import Wallet, WalletTransaction

WALLET_CHANNEL = "wallet"
"""The channel name (API.md) of paying from the wallet."""


class WalletChange(StrEnum):
    TOP_UP = "top_up"
    """Money a gateway captured for a top-up order, now the buyer's to spend."""
    PAYMENT = "payment"
    """Coins spent on an order (a wallet payment)."""
    REFUND = "refund"
    """A wallet payment refunded: the coins come back."""
    REFUND_RESOLUTION = "refund_resolution"
    """A refund the gateway refused, paid into the wallet by staff instead."""


@dataclass(frozen=True, slots=True)
class Movement:
    """What moves a balance: the buyer, the amount and the object that caused it."""

    user_id: str
    app_id: str | None
    amount: Money
    kind: WalletChange
    reference: str
    order_id: str | None = None
    payment_id: str | None = None
    refund_id: str | None = None


def require_currency(settings: WalletSettings, currency: str) -> None:
    """422 unless wallets hold this currency."""
    if currency not in settings.currencies:
        raise WalletCurrencyNotSupported(
            f"Wallets hold {', '.join(settings.currencies)}, not {currency}."
        )


def check_top_up(
    session: Session,
    settings: WalletSettings,
    user_id: str,
    amount: Money,
    awaiting_payment: Callable[[], int],
    now: datetime,
) -> None:
    """422 unless a top-up of `amount` is allowed: a wallet currency, within the per-top-up
    bounds, and not taking the balance over the cap, counting the buyer's top-ups still
    awaiting payment. The wallet row is locked first and `awaiting_payment` asked under the
    lock, so that top-ups asked for at once are counted one after the other."""
    require_currency(settings, amount.currency)
    low, high = settings.top_up_min_minor, settings.top_up_max_minor
    if not low <= amount.amount_minor <= high:
        raise TopUpOutOfRange(
            f"A top-up is between {low} and {high} {amount.currency} minor units.",
            min_amount=low,
            max_amount=high,
        )
    balance = repository.locked(session, user_id, None, amount.currency, now).balance_minor
    awaiting_payment_minor = awaiting_payment()
    would_be = balance + awaiting_payment_minor + amount.amount_minor
    if would_be > settings.max_balance_minor:
        raise WalletBalanceCapReached(
            f"The balance would be {would_be} {amount.currency} minor units with the top-ups "
            f"awaiting payment; a wallet holds at most {settings.max_balance_minor}.",
            balance=balance,
            awaiting_payment=awaiting_payment_minor,
            max_balance=settings.max_balance_minor,
        )


def credit(session: Session, movement: Movement, now: datetime) -> WalletTransaction:
    """Add to the buyer's balance (the caller posts the ledger entry that credits
    `buyer_wallet:{user}`). A top-up over the balance cap is still credited: the money was
    captured, and refusing it here would leave it nowhere."""
    wallet = repository.locked(
        session, movement.user_id, movement.app_id, movement.amount.currency, now
    )
    return _move(session, wallet, movement, movement.amount.amount_minor, now)


def debit(session: Session, movement: Movement, now: datetime) -> WalletTransaction:
    """Take from the buyer's balance under the wallet's lock; 402 `insufficient_balance`
    (nothing changed) when it holds less."""
    amount = movement.amount
    wallet = repository.locked(session, movement.user_id, movement.app_id, amount.currency, now)
    if wallet.balance_minor < amount.amount_minor:
        raise InsufficientBalance(
            f"The wallet holds {Money(wallet.balance_minor, amount.currency)}; {amount} is needed.",
            balance=wallet.balance_minor,
            required=amount.amount_minor,
            currency=amount.currency,
        )
    return _move(session, wallet, movement, -amount.amount_minor, now)


def _move(
    session: Session, wallet: Wallet, movement: Movement, delta_minor: int, now: datetime
) -> WalletTransaction:
    wallet.balance_minor += delta_minor
    wallet.updated_at = now
    if wallet.app_id is None:
        wallet.app_id = movement.app_id
    change = WalletTransaction(
        id=new_id("wtx"),
        wallet_id=wallet.id,
        user_id=wallet.user_id,
        app_id=movement.app_id,
        currency=wallet.currency,
        kind=movement.kind.value,
        amount_minor=delta_minor,
        balance_after_minor=wallet.balance_minor,
        reference=movement.reference,
        order_id=movement.order_id,
        payment_id=movement.payment_id,
        refund_id=movement.refund_id,
        created_at=now,
    )
    session.add(change)
    session.flush()
    return change


def balances(session: Session, user_id: str) -> list[Wallet]:
    """The buyer's wallets, one per currency they ever held."""
    return repository.of_user(session, user_id)


def list_transactions(
    session: Session, user_id: str, params: PageParams, currency: str | None = None
) -> tuple[list[WalletTransaction], bool]:
    """The buyer's balance changes, newest first."""
    return repository.transactions(session, user_id, params, currency)


def check(session: Session) -> list[Violation]:
    """Each wallet's balance is what the ledger's `buyer_wallet` account owes the buyer and
    the sum of its transactions; no ledger wallet account lacks its wallet; the wallet's
    clearing account nets to zero."""
    owed = {
        (account.removeprefix(ledger_accounts.BUYER_WALLET_PREFIX), currency): -total
        for (account, currency), total in ledger.balances_by_prefix(
            session, ledger_accounts.BUYER_WALLET_PREFIX
        ).items()
    }
    totals = repository.transaction_totals(session)
    wallets = repository.every_wallet(session)
    violations: list[Violation] = []
    for wallet in wallets:
        in_ledger = owed.pop((wallet.user_id, wallet.currency), 0)
        if in_ledger != wallet.balance_minor:
            violations.append(
                Violation(
                    "wallet_matches_ledger",
                    wallet.id,
                    f"balance {wallet.balance_minor} {wallet.currency}, the ledger owes "
                    f"{in_ledger}",
                )
            )
        if totals.get(wallet.id, 0) != wallet.balance_minor:
            violations.append(
                Violation(
                    "wallet_matches_transactions",
                    wallet.id,
                    f"balance {wallet.balance_minor} {wallet.currency}, its transactions sum "
                    f"to {totals.get(wallet.id, 0)}",
                )
            )
    violations += [
        Violation(
            "wallet_matches_ledger",
            ledger_accounts.buyer_wallet(user_id),
            f"the ledger owes {amount} {currency} and there is no wallet",
        )
        for (user_id, currency), amount in sorted(owed.items())
        if amount
    ]
    return violations + _clearing_violations(session, {w.currency for w in wallets})


def _clearing_violations(session: Session, currencies: set[str]) -> list[Violation]:
    """Coins pass through `channel_clearing:wallet` within one transaction: it holds nothing."""
    account = ledger_accounts.channel_clearing(WALLET_CHANNEL)
    return [
        Violation("wallet_clearing_is_empty", account, f"holds {held}")
        for currency in sorted(currencies)
        if (held := ledger.balance(session, account, currency)).amount_minor != 0
    ]
