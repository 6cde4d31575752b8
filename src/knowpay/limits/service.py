"""Spending limits, enforced atomically.

An order's amount is reserved against every limit that applies when its first payment
attempt starts, in the same transaction, under a row lock on each (limit, subject, period)
usage row: two payments racing on different processes queue on that row, so together they
can never pass the limit. The reservation stays when the order is paid and is given back
when the order closes unpaid. A channel's reservation moves to the channel that was paid.

Limits in one currency count orders in that currency only: exchange rates are for reports.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Select, String, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from knowpay.accounts import service as accounts
from knowpay.audit import service as audit
from knowpay.kit.clock import day_of, day_start
from knowpay.kit.ids import new_id
from knowpay.kit.outbox import emit, rfc3339
from knowpay.kit.pagination import PageParams, page_of
from knowpay.limits.errors import InvalidLimit, LimitExceeded, LimitNotFound
from knowpay.limits.models import LimitReservation, LimitUsage, SpendingLimit
from knowpay.limits.schemas import LimitCreate, LimitUpdate


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """Where a day begins, and when a buyer is warned."""

    timezone: str = "Asia/Shanghai"
    near_percent: int = 80


@dataclass(frozen=True, slots=True)
class Spend:
    """An order about to be paid through a channel."""

    order_id: str
    app_id: str
    user_id: str
    channel: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class _Period:
    key: str
    resets_at: datetime | None


# Managing limits ---------------------------------------------------------------------------


def create_limit(session: Session, body: LimitCreate, now: datetime) -> SpendingLimit:
    """A new limit; it applies to the next payment, no restart needed."""
    if body.app_id is not None and not accounts.app_exists(session, body.app_id):
        raise InvalidLimit(
            f"No app {body.app_id}: the limit would never apply.",
            errors=[
                {"field": "app_id", "in": "body", "message": "no such app", "type": "not_found"}
            ],
        )
    limit = SpendingLimit(
        id=new_id("lim"),
        scope=body.scope,
        period=body.period,
        currency=body.currency,
        max_amount_minor=body.amount,
        buyer_level=body.buyer_level,
        app_id=body.app_id,
        channel=body.channel,
        description=body.description,
        enabled=body.enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(limit)
    session.flush()
    audit.record(
        session,
        action="limit.created",
        object_type="limit",
        object_id=limit.id,
        after=_described(limit),
        now=now,
    )
    return limit


def _described(limit: SpendingLimit) -> dict[str, object]:
    return {
        "scope": limit.scope,
        "period": limit.period,
        "amount": limit.max_amount_minor,
        "currency": limit.currency,
        "buyer_level": limit.buyer_level,
        "app_id": limit.app_id,
        "channel": limit.channel,
        "enabled": limit.enabled,
    }


def get_limit(session: Session, limit_id: str) -> SpendingLimit:
    limit = session.get(SpendingLimit, limit_id)
    if limit is None:
        raise LimitNotFound(f"No such limit: {limit_id}")
    return limit


def update_limit(
    session: Session, limit_id: str, body: LimitUpdate, now: datetime
) -> SpendingLimit:
    """Change a limit's amount, description or switch it on or off."""
    limit = get_limit(session, limit_id)
    before = _described(limit)
    if body.amount is not None:
        limit.max_amount_minor = body.amount
    if body.description is not None:
        limit.description = body.description or None  # "" clears it
    if body.enabled is not None:
        limit.enabled = body.enabled
    limit.updated_at = now
    session.flush()
    audit.record(
        session,
        action="limit.updated",
        object_type="limit",
        object_id=limit.id,
        before=before,
        after=_described(limit),
        now=now,
    )
    return limit


def list_limits(session: Session) -> list[SpendingLimit]:
    """Every limit, newest first (the console's one page)."""
    return list(session.scalars(select(SpendingLimit).order_by(SpendingLimit.id.desc())))


def page_of_limits(session: Session, params: PageParams) -> tuple[list[SpendingLimit], bool]:
    """A page of the limits, newest first."""
    return page_of(session, select(SpendingLimit), SpendingLimit.id, params)


def usage_of(session: Session, limit_id: str, params: PageParams) -> tuple[list[LimitUsage], bool]:
    """A page of a limit's usage rows (one per subject and period), newest first."""
    get_limit(session, limit_id)
    return page_of(
        session, select(LimitUsage).where(LimitUsage.limit_id == limit_id), LimitUsage.id, params
    )


def set_buyer_level(session: Session, user_id: str, level: str) -> str:
    """A buyer's level, which chooses the buyer limits that apply to them. Staff have none:
    their id is answered as no buyer's."""
    user = accounts.get_buyer(session, user_id)
    before, user.level = user.level, level
    session.flush()
    audit.record(
        session,
        action="user.level_changed",
        object_type="user",
        object_id=user.id,
        before={"level": before},
        after={"level": level},
    )
    return user.level


# Enforcing them ---------------------------------------------------------------------------


def _applicable(session: Session, spend: Spend) -> list[SpendingLimit]:
    params = {
        "currency": spend.currency,
        "app_id": spend.app_id,
        "channel": spend.channel,
        "user_id": spend.user_id,
    }
    limits = session.scalars(_select_applicable(), params)
    return sorted(limits, key=lambda limit: limit.id)


@functools.cache
def _select_applicable() -> Select[SpendingLimit]:
    """Built once, as `_open_reservations`' (see `kit.db.insert_unless_present`)."""
    app_id, channel = bindparam("app_id", type_=String), bindparam("channel", type_=String)
    return select(SpendingLimit).where(
        SpendingLimit.enabled.is_(True),
        SpendingLimit.currency == bindparam("currency", type_=String),
        or_(SpendingLimit.app_id.is_(None), SpendingLimit.app_id == app_id),
        or_(SpendingLimit.channel.is_(None), SpendingLimit.channel == channel),
        or_(
            SpendingLimit.buyer_level.is_(None),
            SpendingLimit.buyer_level == accounts.level_of(bindparam("user_id", type_=String)),
        ),
    )


def _subject(limit: SpendingLimit, spend: Spend) -> str:
    return {"buyer": spend.user_id, "app": spend.app_id, "channel": spend.channel}[limit.scope]


def _period(limit: SpendingLimit, policy: LimitPolicy, now: datetime) -> _Period:
    local = day_of(now, policy.timezone)
    if limit.period == "day":
        reset = day_start(local + timedelta(days=1), policy.timezone)
        return _Period(local.isoformat(), reset.astimezone(UTC))
    if limit.period == "month":
        first_next = date(local.year + local.month // 12, local.month % 12 + 1, 1)
        reset = day_start(first_next, policy.timezone)
        return _Period(f"{local.year:04d}-{local.month:02d}", reset.astimezone(UTC))
    return _Period("transaction", None)


def _refuse(limit: SpendingLimit, period: _Period, used: int, spend: Spend) -> LimitExceeded:
    remaining = max(0, limit.max_amount_minor - used)
    scope = {"buyer": "buyer's", "app": "app's", "channel": f"{spend.channel} channel's"}
    per = {"transaction": "single-payment", "day": "daily", "month": "monthly"}[limit.period]
    return LimitExceeded(
        f"This payment of {spend.amount_minor} {spend.currency} would exceed the "
        f"{scope[limit.scope]} {per} limit of {limit.max_amount_minor} {limit.currency}; "
        f"{remaining} remains.",
        limit={
            "id": limit.id,
            "scope": limit.scope,
            "period": limit.period,
            "amount": limit.max_amount_minor,
            "currency": limit.currency,
        },
        period_key=period.key,
        remaining=remaining,
        resets_at=rfc3339(period.resets_at) if period.resets_at else None,
    )


def _locked_usage(
    session: Session, limit: SpendingLimit, subject: str, period_key: str, now: datetime
) -> LimitUsage:
    """The usage row, created if new, locked for this transaction."""
    values = {
        "id": new_id("lu"),
        "limit_id": limit.id,
        "subject": subject,
        "period_key": period_key,
        "used_minor": 0,
        "near_notified": False,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(LimitUsage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["limit_id", "subject", "period_key"])
    )
    return session.scalars(
        select(LimitUsage)
        .where(
            LimitUsage.limit_id == limit.id,
            LimitUsage.subject == subject,
            LimitUsage.period_key == period_key,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def reserve(session: Session, policy: LimitPolicy, spend: Spend, now: datetime) -> None:
    """Count an order against every limit that applies, or refuse it with `limit_exceeded`
    naming the limit, the period and what remains. Idempotent per order: a second attempt
    for the same order on the same channel counts nothing new. Never commits; on refusal
    the caller's transaction rolls back whatever was counted."""
    limits = _applicable(session, spend)
    for limit in limits:  # single-payment caps first: they need no lock
        if limit.period == "transaction" and spend.amount_minor > limit.max_amount_minor:
            raise _refuse(limit, _period(limit, policy, now), 0, spend)
    for limit in limits:
        if limit.period != "transaction":
            _reserve_one(session, policy, limit, spend, now)


def _reserve_one(
    session: Session, policy: LimitPolicy, limit: SpendingLimit, spend: Spend, now: datetime
) -> None:
    period = _period(limit, policy, now)
    subject = _subject(limit, spend)
    # Counted already in an earlier period (a retry after midnight): once per order. The
    # order is locked by the caller, so its reservations cannot change meanwhile.
    if session.scalar(
        select(LimitReservation.id)
        .join(LimitUsage, LimitUsage.id == LimitReservation.usage_id)
        .where(
            LimitReservation.order_id == spend.order_id,
            LimitReservation.released_at.is_(None),
            LimitUsage.limit_id == limit.id,
            LimitUsage.subject == subject,
            LimitUsage.period_key != period.key,
        )
        .limit(1)
    ):
        return
    usage = _locked_usage(session, limit, subject, period.key, now)
    held = session.scalar(
        select(LimitReservation).where(
            LimitReservation.usage_id == usage.id, LimitReservation.order_id == spend.order_id
        )
    )
    if held is not None and held.released_at is None:
        return
    if usage.used_minor + spend.amount_minor > limit.max_amount_minor:
        raise _refuse(limit, period, usage.used_minor, spend)
    usage.used_minor += spend.amount_minor
    usage.updated_at = now
    if held is None:
        session.add(
            LimitReservation(
                id=new_id("lr"),
                usage_id=usage.id,
                order_id=spend.order_id,
                amount_minor=spend.amount_minor,
                created_at=now,
            )
        )
    else:
        held.amount_minor, held.released_at = spend.amount_minor, None
    _warn_when_near(session, policy, limit, usage, period, spend, now)
    session.flush()


def _warn_when_near(
    session: Session,
    policy: LimitPolicy,
    limit: SpendingLimit,
    usage: LimitUsage,
    period: _Period,
    spend: Spend,
    now: datetime,
) -> None:
    """`limit.near` once per limit, subject and period, when usage reaches the threshold."""
    if usage.near_notified or usage.used_minor * 100 < limit.max_amount_minor * policy.near_percent:
        return
    usage.near_notified = True
    emit(
        session,
        event_type="limit.near",
        data={
            "object": "limit_usage",
            "limit_id": limit.id,
            "scope": limit.scope,
            "period": limit.period,
            "period_key": period.key,
            "subject": usage.subject,
            "used": usage.used_minor,
            "amount": limit.max_amount_minor,
            "remaining": limit.max_amount_minor - usage.used_minor,
            "currency": limit.currency,
            "resets_at": rfc3339(period.resets_at) if period.resets_at else None,
        },
        stream_key=f"limit:{usage.id}",
        app_id=spend.app_id,
        now=now,
    )


def _release(session: Session, reservations: list[LimitReservation], now: datetime) -> None:
    """Give reservations back, locking their usage rows in the order given: the order
    `_open_reservations` lists them in, which is the order `reserve` locks in."""
    for reservation in reservations:
        usage = session.scalars(
            select(LimitUsage)
            .where(LimitUsage.id == reservation.usage_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        usage.used_minor = max(0, usage.used_minor - reservation.amount_minor)
        usage.updated_at = now
        reservation.released_at = now
    session.flush()


def _open_reservations(session: Session, order_id: str) -> list[tuple[LimitReservation, str, str]]:
    """An order's reservations still held, by limit (then subject and period), as `reserve`
    locks their usage rows (sorted here as `_applicable` sorts limits): giving them back in
    another order (the rows' own ids, which follow when each row was made, not its limit)
    could deadlock with a payment of the same buyer."""
    rows = session.execute(_select_open_reservations(), {"order_id": order_id}).all()
    in_lock_order = sorted(rows, key=lambda r: (r[3], r[2], r[4], r[0].usage_id))
    return [(row[0], row[1], row[2]) for row in in_lock_order]


@functools.cache
def _select_open_reservations() -> Select[LimitReservation, str, str, str, str]:
    return (
        select(
            LimitReservation,
            SpendingLimit.scope,
            LimitUsage.subject,
            LimitUsage.limit_id,
            LimitUsage.period_key,
        )
        .join(LimitUsage, LimitUsage.id == LimitReservation.usage_id)
        .join(SpendingLimit, SpendingLimit.id == LimitUsage.limit_id)
        .where(
            LimitReservation.order_id == bindparam("order_id", type_=String),
            LimitReservation.released_at.is_(None),
        )
    )


def release_order(session: Session, order_id: str, now: datetime) -> None:
    """An order closed unpaid: give back everything it reserved."""
    _release(session, [r for r, _, _ in _open_reservations(session, order_id)], now)


def settle_order(session: Session, order_id: str, paid_channel: str, now: datetime) -> None:
    """An order was paid through one channel: the other channels' reservations go back."""
    other_channels = [
        reservation
        for reservation, scope, subject in _open_reservations(session, order_id)
        if scope == "channel" and subject != paid_channel
    ]
    _release(session, other_channels, now)
