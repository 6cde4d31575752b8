"""The ledger's chart of accounts. An account is a name; balances are derived from postings
(no balance row is updated per payment, so no row becomes hot under load)."""

from __future__ import annotations

PLATFORM_REVENUE = "platform_revenue"
"""What the platform earned from sales; credited on capture, debited on refund."""
REFUNDS_IN_FLIGHT = "refunds_in_flight"
"""Refunds sent to a gateway and not yet confirmed."""
DUPLICATE_PAYMENTS_PAYABLE = "duplicate_payments_payable"
"""Money captured twice (or for a closed order) that is owed back to the buyer."""
OFFLINE_REFUNDS = "offline_refunds"
"""Refunds finance paid outside the gateway (bank transfer, cash)."""
FEES = "fees"
"""Gateway fees the platform pays."""
CREATOR_PAYOUTS = "creator_payouts"
"""What was paid out to creators outside the gateways (bank transfers of their statements)."""
CREATOR_PAYABLE_PREFIX = "creator_payable:"


def channel_clearing(channel: str) -> str:
    """What a gateway holds for us: debited on capture, credited on refund and settlement."""
    return f"channel_clearing:{channel}"


def creator_payable(creator_id: str) -> str:
    """What the platform owes a creator from their share of sales."""
    return f"{CREATOR_PAYABLE_PREFIX}{creator_id}"


BUYER_WALLET_PREFIX = "buyer_wallet:"


def buyer_wallet(user_id: str) -> str:
    """A buyer's knowledge-coin balance, which the platform owes them."""
    return f"{BUYER_WALLET_PREFIX}{user_id}"
