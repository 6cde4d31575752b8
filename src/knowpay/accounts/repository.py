"""Every SQL statement of the accounts domain. Never commits."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import ColumnElement, Select, String, bindparam, select, update
from sqlalchemy.orm import Session

from knowpay.accounts.models import ApiKey, App, User
from knowpay.kit.pagination import PageParams, page_of


def add(session: Session, row: App | ApiKey | User) -> None:
    session.add(row)
    session.flush()


def get_user(session: Session, user_id: str, *, for_update: bool = False) -> User | None:
    return session.scalars(_select_user(for_update), {"user_id": user_id}).first()


@functools.cache
def _select_user(for_update: bool) -> Select[User]:
    """Built once (see `kit.db.insert_unless_present`)."""
    statement = select(User).where(User.id == bindparam("user_id", type_=String))
    return statement.with_for_update() if for_update else statement


def level_of(user_id: str | ColumnElement[str]) -> ColumnElement[str]:
    return select(User.level).where(User.id == user_id).scalar_subquery()


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email)).first()


def list_users(
    session: Session, params: PageParams, *, app_id: str | None
) -> tuple[list[User], bool]:
    statement = select(User)
    if app_id is not None:
        statement = statement.where(User.app_id == app_id)
    return page_of(session, statement, User.id, params)


def get_app(session: Session, app_id: str) -> App | None:
    return session.get(App, app_id)


def list_apps(session: Session) -> list[App]:
    return list(session.scalars(select(App).order_by(App.id.desc())).all())


def active_key_app_id(session: Session, key_hash: str) -> str | None:
    """The app of an API key that is neither revoked nor of a disabled app. One column, not
    two ORM objects: every API call asks this."""
    return session.scalar(_select_active_key_app_id(), {"key_hash": key_hash})


@functools.cache
def _select_active_key_app_id() -> Select[str]:
    """Built once (see `kit.db.insert_unless_present`)."""
    return (
        select(ApiKey.app_id)
        .join(App, App.id == ApiKey.app_id)
        .where(
            ApiKey.key_hash == bindparam("key_hash", type_=String),
            ApiKey.revoked_at.is_(None),
            App.disabled_at.is_(None),
        )
    )


def revoke_keys(session: Session, app_id: str, now: datetime) -> int:
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.app_id == app_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
