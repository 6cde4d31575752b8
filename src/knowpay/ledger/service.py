"""The only writer of postings, and the checks behind `knowpay ledger check`."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from knowpay.kit.clock import day_of, day_start
from knowpay.kit.db import insert_rows
from knowpay.kit.ids import new_id
from knowpay.kit.money import Money
from knowpay.ledger.accounts import (
    BUYER_WALLET_PREFIX,
    CREATOR_PAYABLE_PREFIX,
    PLATFORM_REVENUE,
)
from knowpay.ledger.errors import UnbalancedEntry
from knowpay.ledger.models import JournalEntry, Posting

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an entry: positive amounts debit the account, negative ones credit it."""

    account: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken ledger invariant, named so a person can find it."""

    rule: str
    object_id: str
    detail: str


def post_entry(
    session: Session,
    *,
    kind: str,
    legs: list[Leg],
    now: datetime,
    order_id: str | None = None,
    payment_id: str | None = None,
    refund_id: str | None = None,
    memo: str | None = None,
) -> str:
    """Write a balanced journal entry (UnbalancedEntry if it is not); its id. The entry and
    its postings go out at once, as statements built once, not through the session's unit
    of work: nothing reads them back as objects, and every capture and refund writes one."""
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        if leg.amount.amount_minor == 0:
            raise UnbalancedEntry("a posting of zero says nothing")
        totals[leg.amount.currency] += leg.amount.amount_minor
    if len(legs) < 2 or any(totals.values()):
        raise UnbalancedEntry(f"entry {kind} does not balance: {dict(totals)}")
    entry_id = new_id("je")
    insert_rows(
        session,
        JournalEntry,
        {
            "id": entry_id,
            "kind": kind,
            "order_id": order_id,
            "payment_id": payment_id,
            "refund_id": refund_id,
            "memo": memo,
            "created_at": now,
        },
    )
    insert_rows(
        session,
        Posting,
        [
            {
                "entry_id": entry_id,
                "account": leg.account,
                "currency": leg.amount.currency,
                "amount_minor": leg.amount.amount_minor,
                "order_id": order_id,
                "created_at": now,
            }
            for leg in legs
        ],
    )
    return entry_id


def balance(session: Session, account: str, currency: str, *, order_id: str | None = None) -> Money:
    """An account's balance (debits minus credits), optionally for one order's postings."""
    statement = select(func.coalesce(func.sum(Posting.amount_minor), 0)).where(
        Posting.account == account, Posting.currency == currency
    )
    if order_id is not None:
        statement = statement.where(Posting.order_id == order_id)
    return Money(int(session.scalar(statement) or 0), currency)


def balances_by_prefix(
    session: Session, prefix: str, *, before: datetime | None = None
) -> dict[tuple[str, str], int]:
    """Every account whose name starts with `prefix`: (account, currency) → its balance
    (of the postings made before `before`, when given)."""
    statement = (
        select(Posting.account, Posting.currency, func.sum(Posting.amount_minor))
        .where(Posting.account.startswith(prefix, autoescape=True))
        .group_by(Posting.account, Posting.currency)
    )
    if before is not None:
        statement = statement.where(Posting.created_at < before)
    rows = session.execute(statement).all()
    return {(str(account), str(currency)): int(total) for account, currency, total in rows}


def kind_totals_by_prefix(
    session: Session, prefix: str, start: datetime, end: datetime
) -> dict[tuple[str, str, str], int]:
    """The postings of accounts starting with `prefix` in [start, end), summed per account,
    currency and kind of entry: (account, currency, kind) → total."""
    rows = session.execute(
        select(Posting.account, Posting.currency, JournalEntry.kind, func.sum(Posting.amount_minor))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(
            Posting.account.startswith(prefix, autoescape=True),
            Posting.created_at >= start,
            Posting.created_at < end,
        )
        .group_by(Posting.account, Posting.currency, JournalEntry.kind)
    ).all()
    return {(str(a), str(c), str(k)): int(total) for a, c, k, total in rows}


def order_kind_totals(session: Session, order_id: str, prefix: str) -> dict[tuple[str, str], int]:
    """One order's postings to accounts starting with `prefix`: (account, kind) → total."""
    rows = session.execute(
        select(Posting.account, JournalEntry.kind, func.sum(Posting.amount_minor))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(
            Posting.order_id == order_id,
            Posting.account.startswith(prefix, autoescape=True),
        )
        .group_by(Posting.account, JournalEntry.kind)
    ).all()
    return {(str(account), str(kind)): int(total) for account, kind, total in rows}


@dataclass(frozen=True, slots=True)
class AccountLine:
    """One posting of an account, with what its entry was."""

    entry_id: str
    kind: str
    amount_minor: int
    order_id: str | None
    created_at: datetime


def account_lines(
    session: Session, account: str, currency: str, start: datetime, end: datetime
) -> list[AccountLine]:
    """An account's postings in one currency in [start, end), oldest first."""
    rows = session.execute(
        select(
            Posting.entry_id,
            JournalEntry.kind,
            Posting.amount_minor,
            Posting.order_id,
            Posting.created_at,
        )
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(
            Posting.account == account,
            Posting.currency == currency,
            Posting.created_at >= start,
            Posting.created_at < end,
        )
        .order_by(Posting.created_at, Posting.id)
    ).all()
    return [AccountLine(str(e), str(k), int(a), o, c) for e, k, a, o, c in rows]


def check_entries(session: Session) -> list[Violation]:
    """Entries that do not balance per currency, entries without postings, orphan postings."""
    violations: list[Violation] = []
    unbalanced = session.execute(
        select(Posting.entry_id, Posting.currency, func.sum(Posting.amount_minor))
        .group_by(Posting.entry_id, Posting.currency)
        .having(func.sum(Posting.amount_minor) != 0)
    ).all()
    violations += [
        Violation("entry_balances", entry_id, f"postings sum to {total} {currency}, not 0")
        for entry_id, currency, total in unbalanced
    ]
    empty = session.scalars(
        select(JournalEntry.id).where(
            ~select(Posting.id).where(Posting.entry_id == JournalEntry.id).exists()
        )
    ).all()
    violations += [Violation("entry_has_postings", entry_id, "no postings") for entry_id in empty]
    orphans = session.execute(
        select(Posting.id, Posting.entry_id).where(
            ~select(JournalEntry.id).where(JournalEntry.id == Posting.entry_id).exists()
        )
    ).all()
    violations += [
        Violation("posting_has_entry", str(posting_id), f"entry {entry_id} does not exist")
        for posting_id, entry_id in orphans
    ]
    single_sided = session.execute(
        select(Posting.entry_id).group_by(Posting.entry_id).having(func.count() < 2)
    ).all()
    violations += [
        Violation("entry_is_double", row[0], "fewer than two postings") for row in single_sided
    ]
    return violations


def order_holdings(session: Session) -> dict[tuple[str, str], int]:
    """What the ledger says each order holds: (order id, currency) → minor units of revenue,
    the creators' shares of it included."""
    of_the_sale = or_(
        Posting.account == PLATFORM_REVENUE,
        Posting.account.startswith(CREATOR_PAYABLE_PREFIX, autoescape=True),
    )
    rows = session.execute(
        select(Posting.order_id, Posting.currency, func.sum(Posting.amount_minor))
        .where(of_the_sale, Posting.order_id.is_not(None))
        .group_by(Posting.order_id, Posting.currency)
    ).all()
    return {(str(order_id), currency): -int(total) for order_id, currency, total in rows}


def top_up_holdings(session: Session) -> dict[tuple[str, str], int]:
    """What each top-up order's capture put in a buyer's wallet: (order id, currency) → minor
    units (the capture entries' credits to `buyer_wallet:` accounts)."""
    rows = session.execute(
        select(Posting.order_id, Posting.currency, func.sum(Posting.amount_minor))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(
            Posting.account.startswith(BUYER_WALLET_PREFIX, autoescape=True),
            Posting.order_id.is_not(None),
            JournalEntry.kind == "payment_captured",
        )
        .group_by(Posting.order_id, Posting.currency)
    ).all()
    return {(str(order_id), currency): -int(total) for order_id, currency, total in rows}


@dataclass(frozen=True, slots=True)
class DailyTotal:
    """The sum of an account's postings on one day in one currency (debits positive)."""

    day: date
    currency: str
    amount_minor: int


def daily_totals(
    session: Session, account: str, start: date, end: date, timezone: str
) -> list[DailyTotal]:
    """An account's postings summed per day of `timezone` and currency, for days in
    [start, end)."""
    window = (
        Posting.account == account,
        Posting.created_at >= day_start(start, timezone),
        Posting.created_at < day_start(end, timezone),
    )
    sums = None
    if session.get_bind().dialect.name == "postgresql":
        sums = _summed_by_postgresql(session, window, timezone)
    if sums is None:
        sums = _summed_here(session, window, timezone)
    return [
        DailyTotal(day, currency, total)
        for (day, currency), total in sorted(sums.items())
        if total != 0
    ]


DaySums = dict[tuple[date, str], int]


def _summed_by_postgresql(
    session: Session, window: tuple[ColumnElement[bool], ...], timezone: str
) -> DaySums | None:
    """The sums grouped by PostgreSQL, which knows the zone's days (timezone(zone, t) is the
    wall-clock time there, daylight saving included); None when its time zone database has
    no zone by that name (Python's, which checked the setting, may be newer)."""
    local_day = func.date(func.timezone(timezone, Posting.created_at))
    try:
        with session.begin_nested():
            rows = session.execute(
                select(local_day, Posting.currency, func.sum(Posting.amount_minor))
                .where(*window)
                .group_by(local_day, Posting.currency)
            ).all()
    except DataError as exc:  # time zone "…" not recognized (invalid_parameter_value)
        logger.warning("PostgreSQL cannot group by days of %s (%s); summed here", timezone, exc)
        return None
    return {(_as_date(day), str(currency)): int(total) for day, currency, total in rows}


def _summed_here(
    session: Session, window: tuple[ColumnElement[bool], ...], timezone: str
) -> DaySums:
    """SQLite keeps UTC and knows no time zones: the window's postings are summed here."""
    sums: DaySums = defaultdict(int)
    postings = session.execute(
        select(Posting.created_at, Posting.currency, Posting.amount_minor).where(*window)
    )
    for created_at, currency, amount in postings:
        sums[(day_of(created_at, timezone), str(currency))] += int(amount)
    return sums


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
