"""Every SQL statement of settlements. Never commits."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.kit.pagination import PageParams, page_of
from knowpay.settlements.models import Settlement


def get(session: Session, settlement_id: str, *, for_update: bool = False) -> Settlement | None:
    statement = select(Settlement).where(Settlement.id == settlement_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalars(statement).first()


def latest_period(session: Session, creator_id: str, currency: str) -> date | None:
    """The start of the newest period the creator has a statement for in the currency."""
    return session.scalars(
        select(Settlement.period_start)
        .where(Settlement.creator_id == creator_id, Settlement.currency == currency)
        .order_by(Settlement.period_start.desc())
        .limit(1)
    ).first()


def open_ones(session: Session, creator_id: str, currency: str) -> list[Settlement]:
    statement = (
        select(Settlement)
        .where(
            Settlement.creator_id == creator_id,
            Settlement.currency == currency,
            Settlement.status == "open",
        )
        .with_for_update()
    )
    return list(session.scalars(statement))


def of_period(session: Session, period_start: date) -> list[Settlement]:
    return list(
        session.scalars(
            select(Settlement)
            .where(Settlement.period_start == period_start)
            .order_by(Settlement.creator_id, Settlement.currency)
        )
    )


def listed(
    session: Session,
    params: PageParams,
    *,
    creator_id: str | None,
    app_id: str | None,
    status: str | None,
) -> tuple[list[Settlement], bool]:
    statement = select(Settlement)
    if creator_id is not None:
        statement = statement.where(Settlement.creator_id == creator_id)
    if app_id is not None:
        statement = statement.where(Settlement.app_id == app_id)
    if status is not None:
        statement = statement.where(Settlement.status == status)
    return page_of(session, statement, Settlement.id, params)
