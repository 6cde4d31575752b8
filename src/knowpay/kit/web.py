"""Request-boundary helpers shared by every domain's endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def request_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the endpoint returns and before the response
    is sent (a failed commit is an error, never a false 201), rolled back on any error."""
    database = get_database(request)
    session = database.new_session(read_only=request.method in _READ_METHODS)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(request_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
AppClock = Annotated[Clock, Depends(get_clock)]


def get_secret_hasher(request: Request) -> SecretHasher:
    hasher: SecretHasher = request.app.state.secret_hasher
    return hasher


Hasher = Annotated[SecretHasher, Depends(get_secret_hasher)]
