"""Request-boundary helpers shared by every domain's endpoints."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from fastapi.utils import is_body_allowed_for_status_code
from sqlalchemy.orm import Session

from knowpay.kit.clock import Clock
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretHasher
from knowpay.kit.db import Database
from knowpay.kit.idempotency import outcome_kept_with

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
    """A route whose sync endpoint finishes the request in its own worker thread: it renders
    the response (as FastAPI would) and commits the request's session as it returns.

    - The connection is back in the pool before the event loop sees the response. Held
      through another wait for a worker thread (FastAPI validates a sync endpoint's response
      in one), it could be the one every busy thread is waiting for, and a burst would stall
      until the pool timeout.
    - A response that fails validation, or a failed commit, is the endpoint's error: a
      response is never sent for work that was not kept, nor work kept behind a 500.
    - The response to a POST that claimed an `Idempotency-Key` is stored in the same
      transaction as the work (see `kit.idempotency.outcome_kept_with`), so a crash between
      the two can never leave work done and its key free to run it again."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if _finishes_in_thread(endpoint):
            endpoint = self._finishing(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def _finishing(self, endpoint: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(endpoint, eval_str=True)
        parameters = list(signature.parameters.values())
        # FastAPI hands one request and one sub-response (the status and headers that
        # dependencies set) to a single parameter each: the endpoint's own, else ours.
        request_arg = _parameter_of(parameters, Request)
        response_arg = _parameter_of(parameters, Response)
        hidden = {request_arg, response_arg} - set(signature.parameters)
        parameters += [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
            for name, kind in ((request_arg, Request), (response_arg, Response))
            if name in hidden
        ]

        @functools.wraps(endpoint)
        def run(**arguments: Any) -> Any:
            request: Request = arguments[request_arg]
            sub_response: Response = arguments[response_arg]
            for name in hidden:
                del arguments[name]
            response = self._render(endpoint(**arguments), sub_response)
            sessions = [value for value in arguments.values() if isinstance(value, Session)]
            if not sessions:
                return response
            with outcome_kept_with(sessions[0], request.scope, response):
                for session in sessions:
                    session.commit()
            return response

        run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run._knowpay_finishing = True  # type: ignore[attr-defined]
        return run

    def _render(self, result: Any, sub_response: Response) -> Any:
        """The response FastAPI would make of `result`, validated and serialised the way
        its default JSON path does; anything else is left to FastAPI."""
        field = self.response_field
        if isinstance(result, Response) or field is None:
            return result
        if not isinstance(self.response_class, DefaultPlaceholder):
            return result
        value, errors = field.validate(result, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors=errors, body=result)
        body = field.serialize_json(
            value,
            include=self.response_model_include,
            exclude=self.response_model_exclude,
            by_alias=self.response_model_by_alias,
            exclude_unset=self.response_model_exclude_unset,
            exclude_defaults=self.response_model_exclude_defaults,
            exclude_none=self.response_model_exclude_none,
        )
        status_code = sub_response.status_code or self.status_code or 200
        response = Response(content=body, media_type="application/json", status_code=status_code)
        if not is_body_allowed_for_status_code(status_code):
            response.body = b""
        response.headers.raw.extend(sub_response.headers.raw)
        return response


def _parameter_of(parameters: list[inspect.Parameter], kind: type) -> str:
    """The endpoint's parameter that receives `kind`, or the name of one to add."""
    for parameter in parameters:
        annotation = parameter.annotation
        if inspect.isclass(annotation) and issubclass(annotation, kind):
            return parameter.name
    return f"_knowpay_{kind.__name__.lower()}"


def _finishes_in_thread(endpoint: Callable[..., Any]) -> bool:
    """Plain sync functions: FastAPI runs them in a worker thread (async ones and
    generators stream or run on the loop), and each is wrapped once."""
    return not (
        inspect.iscoroutinefunction(endpoint)
        or inspect.isgeneratorfunction(endpoint)
        or inspect.isasyncgenfunction(endpoint)
        or getattr(endpoint, "_knowpay_finishing", False)
    )
