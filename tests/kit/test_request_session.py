"""The request's session is committed even when every worker thread is taken.

Under load the shared worker threads can all be waiting for a pooled connection that only
a finishing request gives back; its commit must not queue behind them."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select
from starlette.routing import BaseRoute

from knowpay.kit.db import Database
from knowpay.kit.idempotency_models import IdempotencyRecord
from knowpay.kit.web import DbSession, SessionRoute, request_session


class _Answer(BaseModel):
    answer: int


def _request(database: Database, method: str) -> Request:
    """What `request_session` reads of a request: the app's database and the method."""
    app = SimpleNamespace(state=SimpleNamespace(database=database))
    return cast(Request, SimpleNamespace(app=app, method=method))


def _record() -> IdempotencyRecord:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return IdempotencyRecord(
        scope="app:test",
        key="k",
        request_fingerprint="0" * 64,
        state="completed",
        created_at=now,
        expires_at=now + timedelta(days=1),
    )


def _records(database: Database) -> int:
    with database.session_scope(read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0)


async def _wait_in_a_thread(event: threading.Event) -> None:
    await anyio.to_thread.run_sync(event.wait)


def test_the_session_commits_while_every_shared_worker_thread_is_busy(database: Database) -> None:
    async def scenario() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        released = threading.Event()
        async with anyio.create_task_group() as tasks:
            # The only shared worker thread waits for something that comes after the commit.
            tasks.start_soon(_wait_in_a_thread, released)
            await anyio.sleep(0.05)
            dependency = request_session(_request(database, "POST"))
            session = await anext(dependency)
            session.add(_record())
            try:
                with anyio.fail_after(5), contextlib.suppress(StopAsyncIteration):
                    await anext(dependency)  # the end of the dependency: the commit
            finally:
                released.set()

    anyio.run(scenario)

    assert _records(database) == 1


def test_a_cancelled_request_rolls_back_and_gives_its_connection_back(
    database: Database,
) -> None:
    async def scenario() -> None:
        dependency = request_session(_request(database, "POST"))
        session = await anext(dependency)
        session.add(_record())
        session.flush()  # the transaction is open and holds a connection
        with anyio.CancelScope() as scope:
            scope.cancel()
            with contextlib.suppress(anyio.get_cancelled_exc_class()):
                await dependency.athrow(anyio.get_cancelled_exc_class()())
        assert not session.in_transaction()

    anyio.run(scenario)

    assert _records(database) == 0
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def _uses_request_session(dependant: Dependant) -> bool:
    return any(
        sub.call is request_session or _uses_request_session(sub) for sub in dependant.dependencies
    )


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (which FastAPI keeps as routers)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def test_every_sync_route_with_a_session_commits_in_its_own_thread(app: FastAPI) -> None:
    """A router made without `route_class=SessionRoute` would hold its connection through
    FastAPI's response validation again (see the module docstring)."""
    routes = list(_api_routes(app.routes))
    with_session = [
        r
        for r in routes
        if _uses_request_session(r.dependant) and not inspect.iscoroutinefunction(r.endpoint)
    ]
    assert len(with_session) > 50  # the API, the pages and the console
    assert [r.path for r in with_session if not isinstance(r, SessionRoute)] == []


def test_a_response_that_fails_validation_is_a_500_and_keeps_no_work(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    """The response is rendered before the commit, so nothing is kept behind a 500."""
    router = APIRouter(route_class=SessionRoute)

    @router.post("/_broken", response_model=_Answer)
    def broken(session: DbSession) -> Any:
        session.add(_record())
        return {"answer": "not a number"}

    app.include_router(router)

    response = client.post("/_broken")

    assert response.status_code == 500
    assert _records(database) == 0


def test_status_and_headers_set_by_the_endpoint_and_its_dependencies_are_kept(
    app: FastAPI, client: TestClient
) -> None:
    def tag(response: Response) -> None:
        response.headers["X-Tag"] = "from-a-dependency"

    router = APIRouter(route_class=SessionRoute)

    @router.post("/_created", response_model=_Answer, dependencies=[Depends(tag)])
    def created(session: DbSession, response: Response) -> _Answer:
        response.status_code = 202
        response.headers["Location"] = "/_created/1"
        return _Answer(answer=1)

    app.include_router(router)

    response = client.post("/_created")

    assert response.status_code == 202
    assert response.json() == {"answer": 1}
    assert response.headers["location"] == "/_created/1"
    assert response.headers["x-tag"] == "from-a-dependency"
    assert response.headers["content-type"] == "application/json"
