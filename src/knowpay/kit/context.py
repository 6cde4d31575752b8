"""Who is acting and where from, for the audit log: request id, client IP and actor.

The request-id middleware binds a `RequestContext` for each HTTP request; the auth dependency
names the actor once the caller is known. FastAPI runs sync dependencies and endpoints in
worker threads, each with a *copy* of the request's contextvars, so setting a contextvar there
would not reach the endpoint: the bound object is mutated instead (every copy shares it).

Outside a request (the worker, scheduled jobs) nothing is bound and the actor is `system`;
`acting_as` names another one for a block (the CLI, for example).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

SYSTEM = "system"


@dataclass(slots=True)
class RequestContext:
    """The circumstances of the current unit of work."""

    request_id: str | None = None
    ip: str | None = None
    actor: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("knowpay_request_context", default=None)


def current() -> RequestContext:
    """The bound context, or a fresh one naming `system` when none is bound."""
    bound = _current.get()
    return bound if bound is not None else RequestContext(actor=SYSTEM)


def actor() -> str:
    """Who is acting now (`system` when nobody was named)."""
    return current().actor or SYSTEM


def set_actor(name: str) -> None:
    """Name the actor of the current request (the auth dependency, a notification endpoint).
    Outside a request this does nothing: background work stays `system`."""
    bound = _current.get()
    if bound is not None:
        bound.actor = name


@contextmanager
def bound(context: RequestContext) -> Iterator[RequestContext]:
    """Bind `context` for the block (the request-id middleware does this per request)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextmanager
def acting_as(name: str, *, request_id: str | None = None) -> Iterator[RequestContext]:
    """Run a block as `name` (e.g. `cli:alice`), restoring what was bound before."""
    with bound(RequestContext(request_id=request_id, actor=name)) as context:
        yield context
