"""Words the console shows for stored values (statuses, states, roles) and for the outcome of
its forms. Marked with N_ so they live in the catalogs; translated when rendered."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from knowpay.refunds import service as refunds
from knowpay.web.cashier import KIND_NAMES
from knowpay.web.errors import GENERIC, MESSAGES, N_

Translate = Callable[[str], str]

VALUES: dict[str, str] = {
    # orders, payments, refunds
    "created": N_("created"),
    "paid": N_("paid"),
    "partially_refunded": N_("partially refunded"),
    "refunded": N_("refunded"),
    "closed": N_("closed"),
    "pending": N_("pending"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "pending_approval": N_("waiting for approval"),
    "processing": N_("processing"),
    "rejected": N_("rejected"),
    # risk reviews
    "open": N_("open"),
    "released": N_("released"),
    "allow": N_("allow"),
    "review": N_("review"),
    "deny": N_("deny"),
    # breakers
    "half_open": N_("half open"),
    # notifications
    "processed": N_("processed"),
    "duplicate": N_("duplicate"),
    "received": N_("received"),
    "unknown_trade": N_("unknown trade"),
    # limits
    "buyer": N_("buyer"),
    "app": N_("app"),
    "channel": N_("channel"),
    "transaction": N_("per transaction"),
    "day": N_("per day"),
    "month": N_("per month"),
    # refund timeline steps
    "requested": N_("requested"),
    "approved": N_("approved"),
    "retried": N_("sent again"),
    "sent_to_gateway": N_("sent to the gateway"),
    "gateway_needs_action": N_("gateway needs action"),
    "money_returned": N_("money returned"),
    "resolved_wallet": N_("paid back to the wallet"),
    "resolved_offline": N_("paid back offline"),
    "gateway_refused": N_("refused by the gateway"),
    # ledger entries
    "payment_captured": N_("payment captured"),
    "duplicate_captured": N_("duplicate payment captured"),
    "refund_sent": N_("refund sent"),
    "refund_succeeded": N_("refund succeeded"),
    "refund_failed": N_("refund failed"),
    "refund_resolved": N_("refund resolved"),
    "creator_share": N_("creator's share"),
    "creator_share_reversed": N_("creator's share taken back"),
    "creator_payout": N_("payout to a creator"),
    # product kinds, in the cashier's words
    **KIND_NAMES,
    # roles
    "admin": N_("admin"),
    "finance": N_("finance"),
    "support": N_("support"),
    # reconciliation
    "balanced": N_("balanced"),
    "discrepancies": N_("discrepancies"),
    "running": N_("running"),
    "missing_in_knowpay": N_("not in the books"),
    "missing_at_gateway": N_("not on the bill"),
    "amount_mismatch": N_("amounts differ"),
    "status_mismatch": N_("statuses differ"),
    "duplicate_at_gateway": N_("paid twice at the gateway"),
    # alert severities
    "error": N_("error"),
    "warning": N_("warning"),
    "info": N_("info"),
}

# Reason texts the system writes (in English, for the gateway's note), in the reader's words.
SYSTEM_REASON_TEXTS: dict[str, str] = {
    refunds.DUPLICATE_OF_PAID: N_(
        "The order was already paid; this second payment goes back automatically."
    ),
    refunds.DUPLICATE_OF_CLOSED: N_(
        "The order was closed before this payment arrived; it goes back automatically."
    ),
}

NOTICES: dict[str, str] = {
    "refund_approved": N_("The refund was approved."),
    "refund_rejected": N_("The refund was rejected."),
    "review_released": N_("The payment was released to its gateway."),
    "review_released_payment_closed": N_(
        "The review is closed, but the payment did not go through to its gateway: it had "
        "already closed, its order can no longer be paid, or the gateway did not take it."
    ),
    "review_rejected": N_("The held payment was rejected."),
    "limit_created": N_("The limit was added."),
    "limit_updated": N_("The limit was saved."),
    "discrepancy_resolved": N_("The discrepancy was resolved."),
    "settlements_made": N_("The month was settled: its new statements are at the top of the list."),
    "settlements_none_made": N_(
        "No new statement: the month was settled before, or no creator earned or was owed "
        "anything in it."
    ),
    "settlement_paid": N_("The payout was recorded: the statement is paid."),
    "subscription_canceled": N_("The subscription was canceled: it has ended and will not renew."),
    "subscription_ending": N_(
        "The subscription will end with the period its buyer has paid for: it will not renew."
    ),
}

ERRORS: dict[str, str] = {
    "risk_review_not_found": N_("We could not find this risk review."),
    "risk_review_already_decided": N_("This review has already been decided."),
    "risk_review_releaser_missing": N_("Held payments cannot be released right now."),
    "limit_not_found": N_("We could not find this limit."),
    "invalid_limit": N_("The limit is not valid."),
    "invalid_amount": N_("Enter the amount as a number, such as 500 or 500.00."),
    "reason_required": N_("Write the reason the buyer will read."),
    "note_required": N_("Write what explains the discrepancy."),
    "discrepancy_not_found": N_("We could not find this discrepancy."),
    "discrepancy_already_resolved": N_("This discrepancy has already been resolved."),
    "invalid_month": N_("Enter the month as year and month, such as 2026-01."),
    "period_not_over": N_(
        "%(month)s has not ended yet. A month can be settled only once it is over: from %(end)s."
    ),
    "settlement_not_payable": N_(
        "Only a statement that is still to be paid can be marked paid: this one is paid "
        "already, replaced by a later statement, or has nothing due."
    ),
}


def value_label(value: str | None, _: Translate) -> str:
    """The translated word for a stored value; the value itself when there is none."""
    if value is None:
        return ""
    known = VALUES.get(value)
    return _(known) if known else value


def reason_text(text: str | None, _: Translate) -> str:
    """A refund's reason text: the system's own in the reader's language, a person's as typed."""
    if not text:
        return ""
    known = SYSTEM_REASON_TEXTS.get(text)
    return _(known) if known else text


def error_message(code: str, _: Translate, values: Mapping[str, str] | None = None) -> str:
    """The translated sentence for an error code of a console form, with `values` filled in
    (only a sentence of ERRORS has placeholders, and only when they are given)."""
    sentence = ERRORS.get(code)
    if sentence and values:
        return _(sentence) % values
    if sentence and "%(" not in sentence:
        return _(sentence)
    return _(MESSAGES.get(code) or GENERIC)
