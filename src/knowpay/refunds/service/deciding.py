"""Deciding on a refund: approving it (its gateway call queued under a fresh refund number)
or rejecting it, retrying a failed one, resolving a failed one by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from knowpay.kit.config import RefundSettings, WalletSettings
from knowpay.ledger import accounts as ledger_accounts
from knowpay.orders import service as orders
from knowpay.refunds.errors import RefundExceedsCaptured
from knowpay.refunds.models import Refund
from knowpay.refunds.service._shared import (
    _emit,
    _post,
    _refundable,
    _source_account,
    _step,
    _transition,
)
from knowpay.refunds.service.settling import _settle, credit_wallet
from knowpay.refunds.states import RefundNotPending, RefundStatus
from knowpay.wallet import service as wallet
from knowpay.wallet.service import WalletChange


def _take_back_its_amount(session: Session, refund: Refund) -> None:
    """A failed refund let its amount go back to what is refundable, and later refunds may
    have taken it since: sending it again, or paying it by hand, takes it once more, so it
    must still be there. The order is locked (`lock_with_order`). A duplicate payment's
    refund returns a payment the order never counted, and has nothing to share."""
    if refund.kind != "request" or refund.status != RefundStatus.FAILED:
        return  # not a failed request: the state change itself says no, as a 409
    refundable = _refundable(session, orders.lock(session, refund.order_id))
    if refund.amount_minor > refundable:
        raise RefundExceedsCaptured(
            f"Refund {refund.id} is for {refund.amount_minor} {refund.currency} minor units; "
            f"only {refundable} can still be refunded (other refunds took the rest since it "
            "failed).",
            refundable=refundable,
        )


def _send(session: Session, refund: Refund, now: datetime) -> None:
    """Move the money to `refunds_in_flight` and queue the gateway call under a fresh number."""
    refund.gateway_attempts += 1
    refund.out_refund_no = (
        refund.id if refund.gateway_attempts == 1 else f"{refund.id}-{refund.gateway_attempts}"
    )
    refund.needs_gateway_call = True
    refund.next_check_at = now
    refund.failure_code = refund.failure_message = None
    # A new number is a new refund at the gateway: the id of the one that failed names no
    # refund of this attempt, and would make its own outcome look like another refund's.
    refund.gateway_refund_no = None
    _post(
        session,
        refund,
        "refund_sent",
        debit=_source_account(refund),
        credit=ledger_accounts.REFUNDS_IN_FLIGHT,
        now=now,
    )


SENT_BY_THE_REQUEST_FOR = timedelta(seconds=30)
"""How long the send job leaves an approved refund to the request that is sending it (one
gateway attempt: 5 s to connect, 10 s to read, and a margin): two sends at once would make
two calls at the gateway under one refund number."""


def leave_to_the_request(refund: Refund, now: datetime) -> None:
    """The request that approved the refund sends it now; the send job keeps off it for a
    while, and takes it over (with the same number) if the request could not send it."""
    refund.next_check_at = now + SENT_BY_THE_REQUEST_FOR


def approve(
    session: Session, refund: Refund, actor: str, now: datetime, note: str | None = None
) -> Refund:
    """pending_approval → processing: the refund will be sent to the gateway."""
    _transition(session, refund, RefundStatus.PROCESSING, now)
    refund.updated_at = now
    _send(session, refund, now)
    _step(session, refund, "approved", actor, now, note)
    return refund


def reject(session: Session, refund: Refund, actor: str, reason: str, now: datetime) -> Refund:
    """pending_approval → rejected, with the reason the buyer will read."""
    _transition(session, refund, RefundStatus.REJECTED, now)
    refund.rejection_reason = reason
    refund.updated_at = now
    _step(session, refund, "rejected", actor, now, reason)
    _emit(session, "refund.rejected", refund, now)
    return refund


def retry(session: Session, refund: Refund, actor: str, now: datetime) -> Refund:
    """failed → processing: send it again (a new refund number at the gateway)."""
    _take_back_its_amount(session, refund)
    _transition(session, refund, RefundStatus.PROCESSING, now)
    refund.updated_at = now
    _send(session, refund, now)
    _step(session, refund, "retried", actor, now)
    return refund


def resolve_manually(
    session: Session,
    refund: Refund,
    actor: str,
    method: str,
    note: str | None,
    now: datetime,
    policy: RefundSettings,
    wallet_settings: WalletSettings | None = None,
) -> Refund:
    """failed → succeeded outside the gateway: to the buyer's wallet (in a currency wallets
    hold), or paid offline."""
    if refund.status != RefundStatus.FAILED:
        # processing → succeeded is the gateway's word: a refund still at the gateway holds
        # its amount in refunds_in_flight and may yet be paid there.
        raise RefundNotPending(
            f"Only a failed refund is resolved by hand; this one is {refund.status}.",
            refund_status=refund.status,
        )
    if method == "wallet":
        wallet.require_currency(wallet_settings or WalletSettings(), refund.currency)
    _take_back_its_amount(session, refund)
    refund.resolution = method
    _transition(session, refund, RefundStatus.SUCCEEDED, now)
    target = (
        ledger_accounts.buyer_wallet(refund.user_id)
        if method == "wallet"
        else ledger_accounts.OFFLINE_REFUNDS
    )
    _post(session, refund, "refund_resolved", debit=_source_account(refund), credit=target, now=now)
    if method == "wallet":
        credit_wallet(session, refund, WalletChange.REFUND_RESOLUTION, now)
    _step(session, refund, f"resolved_{method}", actor, now, note)
    _settle(session, refund, now, policy)
    return refund
