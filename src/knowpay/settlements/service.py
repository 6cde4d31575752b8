"""Creators' statements: what the platform owes each creator at a month's end, read from the
ledger's `creator_payable:{creator}` accounts (the shares are posted when an order is paid,
and reversed when it is refunded: payments and refunds do that), and paying them out.
Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from knowpay.accounts import service as accounts
from knowpay.accounts.errors import UserNotFound
from knowpay.audit import service as audit
from knowpay.auth.principals import Principal
from knowpay.auth.scoping import can_see
from knowpay.kit.clock import day_start
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.kit.outbox import emit
from knowpay.kit.pagination import PageParams
from knowpay.ledger import accounts as ledger_accounts
from knowpay.ledger import service as ledger
from knowpay.ledger.service import Leg, post_entry
from knowpay.settlements import repository
from knowpay.settlements.errors import PeriodNotOver, SettlementNotFound, SettlementNotPayable
from knowpay.settlements.models import Settlement
from knowpay.settlements.schemas import SettlementOut

SHARE_KIND = "creator_share"
REVERSAL_KIND = "creator_share_reversed"
PAYOUT_KIND = "creator_payout"


def month_after(month: date) -> date:
    """The first day of the month after `month`'s."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


@dataclass(frozen=True, slots=True)
class CreatorMonth:
    """One creator's figures in one currency for a month, from the ledger."""

    creator_id: str
    currency: str
    owed_at_end: int
    earned: int
    reversed: int


def _months_figures(
    session: Session, start: datetime, end: datetime, now: datetime
) -> list[CreatorMonth]:
    """What each creator was owed at the month's end, less every payout made since (each
    paid an earlier month's statement, whose amount the end's balance still holds: a
    catch-up run, or one a moment after the month ended, would state it again), and what
    the month's sales and refunds moved."""
    prefix = ledger_accounts.CREATOR_PAYABLE_PREFIX
    owed = ledger.balances_by_prefix(session, prefix, before=end)
    moved = ledger.kind_totals_by_prefix(session, prefix, start, end)
    since = ledger.kind_totals_by_prefix(session, prefix, end, now + timedelta(days=1))
    keys = sorted(set(owed) | {(account, currency) for account, currency, _kind in moved})
    return [
        CreatorMonth(
            creator_id=account.removeprefix(prefix),
            currency=currency,
            owed_at_end=-owed.get((account, currency), 0)
            - since.get((account, currency, PAYOUT_KIND), 0),
            earned=-moved.get((account, currency, SHARE_KIND), 0),
            reversed=moved.get((account, currency, REVERSAL_KIND), 0),
        )
        for account, currency in keys
    ]


def settle(session: Session, month: date, timezone: str, now: datetime) -> list[Settlement]:
    """Make the month's statements, one per creator and currency with anything owed or
    moved; the ones made now (none on a second run). A creator with a statement for this
    month or a later one is left alone (a payout made since would be counted twice)."""
    month = month.replace(day=1)
    start, end = day_start(month, timezone), day_start(month_after(month), timezone)
    if end > now:
        raise PeriodNotOver(f"{month:%Y-%m} ends at {end.isoformat()}; settle it after that.")
    made: list[Settlement] = []
    for figures in _months_figures(session, start, end, now):
        latest = repository.latest_period(session, figures.creator_id, figures.currency)
        if latest is not None and latest >= month:
            continue
        if not (figures.owed_at_end or figures.earned or figures.reversed):
            continue
        made.append(_statement(session, figures, month, now))
    return made


def statements_of(session: Session, month: date) -> list[Settlement]:
    """Every statement of a month."""
    return repository.of_period(session, month.replace(day=1))


def _statement(session: Session, figures: CreatorMonth, month: date, now: datetime) -> Settlement:
    for older in repository.open_ones(session, figures.creator_id, figures.currency):
        older.status = "superseded"  # the new one states all that is owed, theirs included
    settlement = Settlement(
        id=new_id("stl"),
        creator_id=figures.creator_id,
        app_id=_app_of(session, figures.creator_id),
        currency=figures.currency,
        period_start=month,
        period_end=month_after(month),
        earned_minor=figures.earned,
        reversed_minor=figures.reversed,
        amount_minor=figures.owed_at_end,
        status="open" if figures.owed_at_end > 0 else "nothing_due",
        created_at=now,
    )
    session.add(settlement)
    session.flush()
    _emit(session, "settlement.created", settlement, now)
    return settlement


def _app_of(session: Session, creator_id: str) -> str | None:
    try:
        return accounts.get_user(session, creator_id).app_id
    except UserNotFound:
        return None


def pay(
    session: Session, settlement_id: str, actor: str, reference: str | None, now: datetime
) -> Settlement:
    """An open statement paid out (by bank transfer, outside knowpay): the ledger's
    `creator_payable` balance goes down by its amount; audited."""
    settlement = repository.get(session, settlement_id, for_update=True)
    if settlement is None:
        raise SettlementNotFound(f"No such settlement: {settlement_id}")
    if settlement.status != "open":
        raise SettlementNotPayable(
            f"Settlement {settlement.id} is {settlement.status}.",
            settlement_status=settlement.status,
        )
    amount = Money(settlement.amount_minor, settlement.currency)
    post_entry(
        session,
        kind=PAYOUT_KIND,
        now=now,
        memo=f"settlement {settlement.id}",
        legs=[
            Leg(ledger_accounts.creator_payable(settlement.creator_id), amount),
            Leg(ledger_accounts.CREATOR_PAYOUTS, -amount),
        ],
    )
    settlement.status, settlement.paid_at = "paid", now
    settlement.paid_by, settlement.payout_reference = actor, reference
    audit.record(
        session,
        action="settlement.paid",
        object_type="settlement",
        object_id=settlement.id,
        before={"status": "open"},
        after={
            "status": "paid",
            "amount": settlement.amount_minor,
            "currency": settlement.currency,
        },
        now=now,
    )
    _emit(session, "settlement.paid", settlement, now)
    return settlement


def _emit(session: Session, event_type: str, settlement: Settlement, now: datetime) -> None:
    if settlement.app_id is None:
        return
    emit(
        session,
        event_type=event_type,
        data=SettlementOut.of(settlement).model_dump(mode="json"),
        stream_key=settlement.id,
        app_id=settlement.app_id,
        now=now,
    )


def get_visible(session: Session, caller: Principal, settlement_id: str) -> Settlement:
    """A statement its creator, the creator's app or staff may see (404 otherwise)."""
    settlement = repository.get(session, settlement_id)
    if settlement is None or not can_see(
        caller, owner_app_id=settlement.app_id, owner_user_id=settlement.creator_id
    ):
        raise SettlementNotFound(f"No such settlement: {settlement_id}")
    return settlement


def list_visible(
    session: Session,
    caller: Principal,
    params: PageParams,
    *,
    creator_id: str | None,
    status: str | None,
) -> tuple[list[Settlement], bool]:
    """Statements the caller may see, newest first."""
    if caller.is_staff:
        return repository.listed(session, params, creator_id=creator_id, app_id=None, status=status)
    if caller.is_app:
        return repository.listed(
            session, params, creator_id=creator_id, app_id=caller.id, status=status
        )
    if creator_id not in (None, caller.id):  # a person: their own (a buyer may create too)
        return [], False
    return repository.listed(session, params, creator_id=caller.id, app_id=None, status=status)


def lines(session: Session, settlement: Settlement, timezone: str) -> list[ledger.AccountLine]:
    """The statement's month in the creator's account: each share, reversal and payout."""
    return ledger.account_lines(
        session,
        ledger_accounts.creator_payable(settlement.creator_id),
        settlement.currency,
        day_start(settlement.period_start, timezone),
        day_start(settlement.period_end, timezone),
    )


def owed(session: Session, creator_id: str) -> list[Money]:
    """What the platform owes the creator now, per currency (negative: the creator owes)."""
    balances = ledger.balances_by_prefix(session, ledger_accounts.creator_payable(creator_id))
    return [
        Money(-total, currency)
        for (account, currency), total in sorted(balances.items())
        if account == ledger_accounts.creator_payable(creator_id)
    ]
