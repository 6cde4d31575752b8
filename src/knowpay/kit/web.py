"""Request-boundary helpers shared by every domain's endpoints."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def request_session(request: Request) -> AsyncGenerator[Session, None]:
    """One session per request, committed when the endpoint returns and before the response
    is sent (a failed commit is an error, never a false 201), rolled back on any error.

    Opening a session touches no database, so it happens on the event loop. A sync endpoint
    of a `SessionRoute` commits in its own worker thread as it returns; what is left here
    (an async endpoint's commit, a rollback after an error) goes to a worker thread."""
    database = get_database(request)
    session = database.new_session(read_only=request.method in _READ_METHODS)
    try:
        yield session
    except BaseException:
        # Shielded: a cancelled request still gives its connection (and, on SQLite, its
        # write lock) back instead of leaving them to the garbage collector.
        with anyio.CancelScope(shield=True):
            await _give_back(_roll_back_and_close, session)
        raise
    if session.in_transaction():
        await _give_back(_commit_and_close, session)
    else:  # a `SessionRoute` endpoint committed in its own thread: no I/O left to do
        session.close()


async def _give_back(finish: Callable[[Session], None], session: Session) -> None:
    """Finish the session in a worker thread outside the shared thread limit (as FastAPI
    runs the exit of a sync yield-dependency): under load every limited thread can be
    waiting for a pooled connection that only this commit returns."""
    await anyio.to_thread.run_sync(finish, session, limiter=anyio.CapacityLimiter(1))


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _roll_back_and_close(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


DbSession = Annotated[Session, Depends(request_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
AppClock = Annotated[Clock, Depends(get_clock)]


async def get_secret_hasher(request: Request) -> SecretHasher:
    hasher: SecretHasher = request.app.state.secret_hasher
    return hasher


Hasher = Annotated[SecretHasher, Depends(get_secret_hasher)]


class SessionRoute(APIRoute):
    """A route whose sync endpoint commits the request's session in its own worker thread,
    as it returns. The connection is back in the pool before FastAPI validates the response
    (another worker thread): held through that wait, it could be the one every busy thread
    is waiting for, and a burst would stall until the pool timeout. A failed commit is the
    endpoint's error, so a response is never sent for work that was not kept."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Session):
                value.commit()
        return result

    return run
