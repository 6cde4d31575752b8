"""Granting access: only in the transaction that records a payment; renewals extend it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Select, String, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from knowpay.entitlements.errors import EntitlementNotActive
from knowpay.entitlements.models import Entitlement, EntitlementGrant
from knowpay.kit.db import insert_rows, insert_unless_present
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams, page_of
from knowpay.kit.schemas import LATEST_DAY

LATEST_UNTIL = datetime.combine(LATEST_DAY, time.min, tzinfo=UTC)
"""The furthest end of a period (the last day knowpay holds anything for): a membership bought
for longer is capped there, since a later date cannot be represented at all."""


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """What one paid order line gives a buyer."""

    user_id: str
    app_id: str
    product_id: str
    period_days: int | None
    """None for lifetime access; otherwise each unit bought adds this many days."""
    quantity: int
    order_id: str
    payment_id: str


def _locked(session: Session, user_id: str, product_id: str) -> Entitlement | None:
    params = {"user_id": user_id, "product_id": product_id}
    return session.scalars(_select_locked(), params).first()


@functools.cache
def _select_locked() -> Select[Entitlement]:
    """Built once (see `kit.db.insert_unless_present`): every capture sends it."""
    return (
        select(Entitlement)
        .where(
            Entitlement.user_id == bindparam("user_id", type_=String),
            Entitlement.product_id == bindparam("product_id", type_=String),
        )
        .with_for_update()
        # A copy read earlier in the transaction (a subscription's renewal reads it to decide)
        # must not stand for the row locked now: another capture may have extended it.
        .execution_options(populate_existing=True)
    )


def _plus_days(start: datetime, days: int) -> datetime:
    """`start` + `days`, capped at LATEST_UNTIL (100 units of a 36,600-day membership, or a
    few such renewals stacked, would otherwise overflow and fail the capture that grants it)."""
    if days >= (LATEST_UNTIL - start).days:
        return max(start, LATEST_UNTIL)
    return start + timedelta(days=days)


def _days_bought(request: GrantRequest) -> int | None:
    return None if request.period_days is None else request.period_days * request.quantity


def _extend(
    entitlement: Entitlement, days: int | None, now: datetime
) -> tuple[datetime, datetime | None]:
    """Renewal: a lifetime grant makes it lifetime; a period extends from the current end
    (or from now when it has lapsed or was revoked). Either way a revoked access (a refunded
    purchase) is restored: this payment bought it again, and as a new purchase it has not been
    opened yet (the refund policy's "never opened" reads `first_accessed_at`)."""
    revoked = entitlement.revoked_at is not None
    if revoked:
        entitlement.first_accessed_at = None
    if days is None:
        if revoked:
            entitlement.valid_from = now
        entitlement.valid_until = None
        entitlement.revoked_at = None
        return now, None
    still_running = entitlement.valid_until is None or entitlement.valid_until > now
    if revoked or not still_running:
        entitlement.valid_from = now
        start = now
    else:
        if entitlement.valid_until is None:  # lifetime already: a period adds nothing
            return now, None
        start = entitlement.valid_until
    entitlement.valid_until = _plus_days(start, days)
    entitlement.revoked_at = None
    return start, entitlement.valid_until


def grant(session: Session, request: GrantRequest, now: datetime) -> Entitlement:
    """Grant or extend a buyer's access for a payment, recording the grant."""
    days = _days_bought(request)
    entitlement = _locked(session, request.user_id, request.product_id)
    if entitlement is None:
        entitlement = _insert_or_lock(session, request, days, now)
        start, until = entitlement.valid_from, entitlement.valid_until
    else:
        start, until = _extend(entitlement, days, now)
        _touch(entitlement, now)
    entitlement.payment_id = request.payment_id
    # The grant goes out at once, by a statement built once (nothing reads it back here).
    insert_rows(
        session,
        EntitlementGrant,
        {
            "id": new_id("eg"),
            "entitlement_id": entitlement.id,
            "payment_id": request.payment_id,
            "order_id": request.order_id,
            "valid_from": start,
            "valid_until": until,
            "days": days,
            "created_at": now,
        },
    )
    session.flush()
    return entitlement


def _insert_or_lock(
    session: Session, request: GrantRequest, days: int | None, now: datetime
) -> Entitlement:
    until = None if days is None else _plus_days(now, days)
    values = {
        "id": new_id("ent"),
        "user_id": request.user_id,
        "app_id": request.app_id,
        "product_id": request.product_id,
        "payment_id": request.payment_id,
        "valid_from": now,
        "valid_until": until,
        "created_at": now,
        "updated_at": now,
    }
    inserted = insert_unless_present(session, Entitlement, values, unique=("user_id", "product_id"))
    if inserted is not None:
        return inserted
    # Another transaction granted the same product at the same moment: extend that one.
    existing = _locked(session, request.user_id, request.product_id)
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish (never deleted)
        raise RuntimeError(f"entitlement of {request.user_id} to {request.product_id} vanished")
    _extend(existing, days, now)
    _touch(existing, now)
    return existing


def _touch(entitlement: Entitlement, now: datetime) -> None:
    """`updated_at` moves forward with every change, if only by a microsecond: its events
    come from different orders and may reach a platform out of order, and the newest
    `updated_at` is the state that stands (the row is locked, so changes are in turn)."""
    entitlement.updated_at = max(now, entitlement.updated_at + timedelta(microseconds=1))


def list_for_user(
    session: Session, user_id: str, params: PageParams
) -> tuple[list[Entitlement], bool]:
    """A buyer's entitlements, newest first."""
    statement = _select_of_user()
    return page_of(session, statement, Entitlement.id, params, bound={"user_id": user_id})


@functools.cache
def _select_of_user() -> Select[Entitlement]:
    return select(Entitlement).where(Entitlement.user_id == bindparam("user_id", type_=String))


def entitlements_without_grant(session: Session) -> list[str]:
    """Ids of entitlements that no payment granted, or in force with every grant taken back
    (must always be empty)."""
    grants_of_it = select(EntitlementGrant.id).where(
        EntitlementGrant.entitlement_id == Entitlement.id
    )
    in_force = grants_of_it.where(EntitlementGrant.revoked_at.is_(None))
    statement = select(Entitlement.id).where(
        or_(~grants_of_it.exists(), and_(Entitlement.revoked_at.is_(None), ~in_force.exists()))
    )
    return list(session.scalars(statement).all())


def grants(session: Session) -> list[tuple[str, str]]:
    """(entitlement id, payment id) for every grant, for the integrity check."""
    return [
        (row[0], row[1])
        for row in session.execute(
            select(EntitlementGrant.entitlement_id, EntitlementGrant.payment_id)
        )
    ]


def revoke_granted_by(session: Session, payment_id: str, now: datetime) -> list[Entitlement]:
    """Take back what one payment granted (a refund): its grants end, and each entitlement
    they fed becomes what its other grants give, or is revoked when none is left. Returns
    those entitlements."""
    taken = session.scalars(
        select(EntitlementGrant).where(
            EntitlementGrant.payment_id == payment_id, EntitlementGrant.revoked_at.is_(None)
        )
    ).all()
    if not taken:
        return []
    # Locked by product, as a capture grants them: no deadlock with a capture of the buyer's.
    changed = list(
        session.scalars(
            select(Entitlement)
            .where(Entitlement.id.in_({g.entitlement_id for g in taken}))
            .order_by(Entitlement.product_id)
            .with_for_update()
        ).all()
    )
    for grant_taken in taken:
        grant_taken.revoked_at = now
    session.flush()
    for entitlement in changed:
        _rebuild(entitlement, _grants_in_force(session, entitlement.id), now)
    session.flush()
    return changed


def _grants_in_force(session: Session, entitlement_id: str) -> list[EntitlementGrant]:
    statement = (
        select(EntitlementGrant)
        .where(
            EntitlementGrant.entitlement_id == entitlement_id,
            EntitlementGrant.revoked_at.is_(None),
        )
        .order_by(EntitlementGrant.created_at, EntitlementGrant.id)
    )
    return list(session.scalars(statement).all())


def _rebuild(entitlement: Entitlement, in_force: list[EntitlementGrant], now: datetime) -> None:
    """The entitlement as if only the grants `in_force` had been paid, each applied when it
    was, as `grant` applied it; revoked when there are none."""
    _touch(entitlement, now)
    if not in_force:
        entitlement.revoked_at = now
        return
    first, *later = in_force
    entitlement.valid_from = first.created_at
    entitlement.valid_until = (
        None if first.days is None else _plus_days(first.created_at, first.days)
    )
    entitlement.revoked_at = None
    for later_grant in later:
        _extend(entitlement, later_grant.days, later_grant.created_at)
    entitlement.payment_id = in_force[-1].payment_id


def any_used(session: Session, payment_id: str) -> bool:
    """Whether the buyer has opened any content this payment granted."""
    statement = (
        select(Entitlement.id)
        .join(EntitlementGrant, EntitlementGrant.entitlement_id == Entitlement.id)
        .where(
            EntitlementGrant.payment_id == payment_id, Entitlement.first_accessed_at.is_not(None)
        )
    )
    return session.scalars(statement).first() is not None


def find(session: Session, user_id: str, product_id: str) -> Entitlement | None:
    """A buyer's access to a product, whatever its state (None if never granted)."""
    return session.scalars(
        select(Entitlement)
        .where(Entitlement.user_id == user_id, Entitlement.product_id == product_id)
        .execution_options(populate_existing=True)
    ).first()


def get(session: Session, entitlement_id: str) -> Entitlement | None:
    return session.get(Entitlement, entitlement_id)


def in_force(entitlement: Entitlement, now: datetime) -> bool:
    """Whether the buyer may open the content now: not revoked, and not ended (a period's
    `valid_until` is the first moment without access)."""
    return entitlement.revoked_at is None and (
        entitlement.valid_until is None or entitlement.valid_until > now
    )


def record_access(entitlement: Entitlement, now: datetime) -> Entitlement:
    """Note the first time the buyer opened the content (it decides automatic refunds).
    Content revoked or ended cannot be opened: EntitlementNotActive, nothing noted."""
    if not in_force(entitlement, now):
        raise EntitlementNotActive(
            f"Entitlement {entitlement.id} was revoked or has ended; nothing was recorded."
        )
    if entitlement.first_accessed_at is None:
        entitlement.first_accessed_at = now
    return entitlement
