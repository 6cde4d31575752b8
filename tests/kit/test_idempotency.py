"""Idempotency-Key on POST under /v1: replay, reuse, concurrency, scoping, expiry, takeover."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from starlette.types import Message, Receive, Scope, Send

from knowpay.catalog.models import Product
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.errors import Conflict
from knowpay.kit.idempotency import (
    KEEP_FOR,
    LOCK_FOR,
    keep_interim_outcome,
    purge_expired,
    request_fingerprint,
    without_secrets,
)
from knowpay.kit.idempotency_models import IdempotencyRecord
from knowpay.kit.web import DbSession, SessionRoute
from tests.builders import Builders, Caller
from tests.statements import statements_sent

PRODUCT = {"title": "Course", "kind": "course", "prices": [{"amount": 9900, "currency": "CNY"}]}
WAIT_S = 10


def _assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"https://knowpay.dev/problems/{code}"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "idempotent-replayed" not in response.headers
    return body


def _with_key(caller: Caller, key: str) -> dict[str, str]:
    return {**caller.headers, "Idempotency-Key": key}


def _count_products(database: Database) -> int:
    with database.session_scope(read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(Product)) or 0)


def _records(database: Database) -> list[IdempotencyRecord]:
    with database.session_scope(read_only=True) as session:
        return list(session.scalars(select(IdempotencyRecord).order_by(IdempotencyRecord.key)))


@dataclass
class Probe:
    """Test-only routes that count their calls; `_slow` holds the calls numbered in `hold`
    until `release[call]` is set, and tells when each call started."""

    calls: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    hold: set[int] = field(default_factory=lambda: {1})
    started: dict[int, threading.Event] = field(
        default_factory=lambda: {n: threading.Event() for n in range(1, 5)}
    )
    release: dict[int, threading.Event] = field(
        default_factory=lambda: {n: threading.Event() for n in range(1, 5)}
    )
    flaky_outcomes: list[str] = field(default_factory=list)

    def next_call(self) -> int:
        return next(self.calls)


@pytest.fixture
def probe(app: FastAPI) -> Iterator[Probe]:
    probe = Probe()

    def respond(call: int, status: int = 201) -> JSONResponse:
        return JSONResponse(
            {"call": call}, status_code=status, headers={"Location": f"/v1/_things/{call}"}
        )

    @app.post("/v1/_echo")
    def echo() -> JSONResponse:
        return respond(probe.next_call())

    @app.post("/v1/_slow")
    def slow() -> JSONResponse:
        call = probe.next_call()
        probe.started[call].set()
        if call in probe.hold:
            assert probe.release[call].wait(WAIT_S)
        return respond(call)

    @app.post("/v1/_flaky")
    def flaky() -> JSONResponse:
        outcome = probe.flaky_outcomes.pop(0) if probe.flaky_outcomes else "ok"
        if outcome == "raise":
            raise RuntimeError("boom")
        if outcome == "collide":  # a duplicate key written by a concurrent transaction
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: t.k"))
        return respond(probe.next_call(), 503 if outcome == "503" else 201)

    yield probe
    for event in probe.release.values():
        event.set()


@pytest.fixture
def app_caller(build: Builders) -> Caller:
    return build.app()


# Replay ---------------------------------------------------------------------------------------


def test_a_retry_replays_the_first_response_and_writes_nothing_twice(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    headers = _with_key(app_caller, "order-42")
    first = client.post("/v1/products", json=PRODUCT, headers=headers)
    second = client.post("/v1/products", json=PRODUCT, headers=headers)

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["x-request-id"].startswith("req_")
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert _count_products(database) == 1
    [record] = _records(database)
    assert (record.scope, record.key, record.state) == (
        f"app:{app_caller.id}",
        "order-42",
        "completed",
    )


def test_replay_keeps_the_status_and_location(
    client: TestClient, app_caller: Caller, probe: Probe
) -> None:
    headers = _with_key(app_caller, "echo-1")
    first = client.post("/v1/_echo", json={"a": 1}, headers=headers)
    second = client.post("/v1/_echo", json={"a": 1}, headers=headers)

    assert (first.status_code, first.json()) == (201, {"call": 1})
    assert (second.status_code, second.json()) == (201, {"call": 1})
    assert second.headers["location"] == first.headers["location"] == "/v1/_things/1"
    assert second.headers["idempotent-replayed"] == "true"
    assert probe.next_call() == 2  # the endpoint ran once


def test_a_client_error_is_stored_and_replayed_too(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    headers = _with_key(app_caller, "bad-product")
    first = client.post("/v1/products", json={"title": "No prices"}, headers=headers)
    second = client.post("/v1/products", json={"title": "No prices"}, headers=headers)

    assert first.status_code == 422
    assert second.status_code == 422
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert _count_products(database) == 0


# Reuse and concurrency ------------------------------------------------------------------------


def test_the_same_key_with_another_request_is_422(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    headers = _with_key(app_caller, "k-1")
    assert client.post("/v1/products", json=PRODUCT, headers=headers).status_code == 201

    other_body = client.post("/v1/products", json={**PRODUCT, "title": "Other"}, headers=headers)
    other_query = client.post("/v1/products?x=1", json=PRODUCT, headers=headers)

    _assert_problem(other_body, 422, "idempotency_key_reused")
    _assert_problem(other_query, 422, "idempotency_key_reused")
    assert _count_products(database) == 1
    assert client.post("/v1/products", json=PRODUCT, headers=headers).status_code == 201


def test_the_same_key_while_the_first_request_runs_is_409(
    client: TestClient, app_caller: Caller, probe: Probe
) -> None:
    headers = _with_key(app_caller, "slow-1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(client.post, "/v1/_slow", json={"n": 1}, headers=headers)
        assert probe.started[1].wait(WAIT_S)

        _assert_problem(
            client.post("/v1/_slow", json={"n": 1}, headers=headers), 409, "idempotency_key_in_use"
        )

        probe.release[1].set()
        first_response = first.result(timeout=WAIT_S)

    assert (first_response.status_code, first_response.json()) == (201, {"call": 1})
    replay = client.post("/v1/_slow", json={"n": 1}, headers=headers)
    assert replay.json() == {"call": 1}
    assert replay.headers["idempotent-replayed"] == "true"


def test_simultaneous_requests_with_one_key_run_the_endpoint_once(
    client: TestClient, app_caller: Caller, probe: Probe
) -> None:
    headers = _with_key(app_caller, "burst")
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [
            pool.submit(client.post, "/v1/_slow", json={}, headers=headers) for _ in range(8)
        ]
        assert probe.started[1].wait(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while sum(f.done() for f in futures) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        probe.release[1].set()
        responses = [f.result(timeout=WAIT_S) for f in futures]

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7
    for response in responses:
        if response.status_code == 409:
            _assert_problem(response, 409, "idempotency_key_in_use")
    assert probe.next_call() == 2  # the endpoint ran once


# Scoping --------------------------------------------------------------------------------------


def test_keys_are_scoped_to_the_caller(
    client: TestClient, build: Builders, database: Database, probe: Probe
) -> None:
    first_app, second_app = build.app("first"), build.app("second")
    buyer = build.buyer(first_app)

    one = client.post("/v1/products", json=PRODUCT, headers=_with_key(first_app, "shared"))
    two = client.post("/v1/products", json=PRODUCT, headers=_with_key(second_app, "shared"))
    three = client.post("/v1/_echo", json=PRODUCT, headers=_with_key(buyer, "shared"))
    three_again = client.post("/v1/_echo", json=PRODUCT, headers=_with_key(buyer, "shared"))

    assert one.status_code == two.status_code == 201
    assert "idempotent-replayed" not in one.headers
    assert "idempotent-replayed" not in two.headers
    assert one.json()["id"] != two.json()["id"]
    assert _count_products(database) == 2
    assert three.json() == three_again.json() == {"call": 1}
    assert three_again.headers["idempotent-replayed"] == "true"
    assert {r.scope for r in _records(database)} == {
        f"app:{first_app.id}",
        f"app:{second_app.id}",
        f"buyer:{buyer.id}",
    }


def test_an_unauthenticated_caller_is_not_handled(client: TestClient, database: Database) -> None:
    headers = {"Authorization": "Bearer kp_live_nonsense", "Idempotency-Key": "k"}
    _assert_problem(
        client.post("/v1/products", json=PRODUCT, headers=headers), 401, "invalid_api_key"
    )
    no_auth = client.post("/v1/products", json=PRODUCT, headers={"Idempotency-Key": "k"})
    _assert_problem(no_auth, 401, "unauthorized")
    assert _records(database) == []


# Expiry, failures and takeover ----------------------------------------------------------------


def test_a_key_expires_after_24_hours(
    client: TestClient, app_caller: Caller, database: Database, clock: FrozenClock
) -> None:
    headers = _with_key(app_caller, "daily")
    first = client.post("/v1/products", json=PRODUCT, headers=headers)
    clock.advance(KEEP_FOR - timedelta(seconds=1))
    assert client.post("/v1/products", json=PRODUCT, headers=headers).content == first.content

    clock.advance(timedelta(seconds=1))
    fresh = client.post("/v1/products", json={**PRODUCT, "title": "New"}, headers=headers)

    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers
    assert fresh.json()["id"] != first.json()["id"]
    assert _count_products(database) == 2
    [record] = _records(database)
    assert record.expires_at == clock.now() + KEEP_FOR


@pytest.mark.parametrize("failure", ["raise", "503"])
def test_a_server_error_is_not_stored_so_a_retry_runs_again(
    client: TestClient, app_caller: Caller, database: Database, probe: Probe, failure: str
) -> None:
    probe.flaky_outcomes.append(failure)
    headers = _with_key(app_caller, "flaky")

    failed = client.post("/v1/_flaky", json={}, headers=headers)
    assert failed.status_code in {500, 503}
    assert _records(database) == []

    retry = client.post("/v1/_flaky", json={}, headers=headers)
    replay = client.post("/v1/_flaky", json={}, headers=headers)
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert replay.content == retry.content
    assert replay.headers["idempotent-replayed"] == "true"


def test_an_answer_that_says_retry_later_is_not_stored_so_a_retry_runs_again(
    client: TestClient, app_caller: Caller, database: Database, probe: Probe
) -> None:
    """409 `concurrent_update` carries Retry-After: it is not the request's result, and
    replaying it would refuse the retry it asks for (as Stripe: a request that conflicted
    with a concurrent one leaves no idempotent result)."""
    probe.flaky_outcomes.append("collide")
    headers = _with_key(app_caller, "collide")

    collided = client.post("/v1/_flaky", json={}, headers=headers)
    assert (collided.status_code, collided.json()["code"]) == (409, "concurrent_update")
    assert _records(database) == []

    retry = client.post("/v1/_flaky", json={}, headers=headers)
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers


def test_a_crashed_requests_key_is_taken_over_after_the_lock_passes(
    client: TestClient, app_caller: Caller, database: Database, clock: FrozenClock, probe: Probe
) -> None:
    # What a process that died in the middle of the request leaves behind.
    with database.session_scope() as session:
        session.add(
            IdempotencyRecord(
                scope=f"app:{app_caller.id}",
                key="crashed",
                request_fingerprint=request_fingerprint("POST", "/v1/_echo", b"", b'{"a":1}'),
                state="in_progress",
                locked_until=clock.now() + LOCK_FOR,
                created_at=clock.now(),
                expires_at=clock.now() + KEEP_FOR,
            )
        )
    headers = {**_with_key(app_caller, "crashed"), "Content-Type": "application/json"}

    locked = client.post("/v1/_echo", content=b'{"a":1}', headers=headers)
    _assert_problem(locked, 409, "idempotency_key_in_use")

    clock.advance(LOCK_FOR)
    taken_over = client.post("/v1/_echo", content=b'{"a":1}', headers=headers)
    replay = client.post("/v1/_echo", content=b'{"a":1}', headers=headers)

    assert (taken_over.status_code, taken_over.json()) == (201, {"call": 1})
    assert replay.json() == {"call": 1}
    assert replay.headers["idempotent-replayed"] == "true"


def test_an_interim_answer_of_a_crashed_request_is_replayed_once_the_lock_passes(
    client: TestClient, app_caller: Caller, database: Database, clock: FrozenClock, probe: Probe
) -> None:
    """A request that kept an interim answer (`keep_interim_outcome`) and then died: until its
    lock passes it may still be running (409), then the interim answer is what it did."""
    with database.session_scope() as session:
        session.add(
            IdempotencyRecord(
                scope=f"app:{app_caller.id}",
                key="died-after-part",
                request_fingerprint=request_fingerprint("POST", "/v1/_echo", b"", b"{}"),
                state="completed",
                locked_until=clock.now() + LOCK_FOR,
                response_status=201,
                response_headers='[["content-type", "application/json"]]',
                response_body=b'{"status":"processing"}',
                created_at=clock.now(),
                expires_at=clock.now() + KEEP_FOR,
            )
        )
    headers = {**_with_key(app_caller, "died-after-part"), "Content-Type": "application/json"}

    maybe_running = client.post("/v1/_echo", content=b"{}", headers=headers)
    clock.advance(LOCK_FOR)
    after_the_lock = client.post("/v1/_echo", content=b"{}", headers=headers)

    _assert_problem(maybe_running, 409, "idempotency_key_in_use")
    assert (after_the_lock.status_code, after_the_lock.content) == (201, b'{"status":"processing"}')
    assert after_the_lock.headers["idempotent-replayed"] == "true"
    assert next(probe.calls) == 1  # the endpoint never ran


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("refused", 409),  # a 4xx: the final answer cannot replace the interim one
        ("try_again", 409),  # an answer with Retry-After is never stored
        ("server_error", 503),  # nor a 5xx
    ],
)
def test_a_request_that_ends_without_a_final_answer_after_an_interim_one_leaves_it_at_once(
    app: FastAPI, client: TestClient, app_caller: Caller, ending: str, status: int
) -> None:
    """What the part it committed did stands; its retries need not wait for the lock."""
    router = APIRouter(route_class=SessionRoute)

    @router.post("/v1/_part_then_stopped")
    def part_then_stopped(request: Request, session: DbSession) -> JSONResponse:
        keep_interim_outcome(session, request.scope, 201, lambda: b'{"part":"kept"}')
        session.commit()
        if ending == "refused":
            raise Conflict("The rest was refused.")
        if ending == "try_again":
            raise Conflict("Try the rest again.", headers={"Retry-After": "1"})
        return JSONResponse({"detail": "unavailable"}, status_code=503)

    app.include_router(router)
    headers = _with_key(app_caller, f"part-then-{ending}")

    first = client.post("/v1/_part_then_stopped", json={}, headers=headers)
    retry = client.post("/v1/_part_then_stopped", json={}, headers=headers)

    assert first.status_code == status, first.text
    assert (retry.status_code, retry.content) == (201, b'{"part":"kept"}')
    assert retry.headers["idempotent-replayed"] == "true"


def test_a_final_answer_replaces_the_interim_one_and_is_what_a_retry_is_told(
    app: FastAPI, client: TestClient, app_caller: Caller, database: Database
) -> None:
    """The interim answer keeps the claim's token, so the request's own final answer (kept
    with the rest of the work) can replace it."""
    router = APIRouter(route_class=SessionRoute)

    @router.post("/v1/_part_then_done", status_code=201)
    def part_then_done(request: Request, session: DbSession) -> dict[str, str]:
        keep_interim_outcome(session, request.scope, 201, lambda: b'{"part":"kept"}')
        session.commit()
        return {"all": "done"}

    app.include_router(router)
    headers = _with_key(app_caller, "part-then-done")

    first = client.post("/v1/_part_then_done", json={}, headers=headers)
    retry = client.post("/v1/_part_then_done", json={}, headers=headers)

    assert (first.status_code, first.json()) == (201, {"all": "done"}), first.text
    assert (retry.status_code, retry.json()) == (201, {"all": "done"})
    assert retry.headers["idempotent-replayed"] == "true"
    with database.session_scope(read_only=True) as session:
        record = session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.key == "part-then-done")
        ).one()
        assert (record.state, record.locked_until) == ("completed", None)


def _overtaken(
    pool: ThreadPoolExecutor,
    client: TestClient,
    path: str,
    headers: dict[str, str],
    clock: FrozenClock,
    probe: Probe,
) -> tuple[Future[Any], Future[Any]]:
    """A first request held past its key's lock, and a second one (also held) that took the
    key over."""
    probe.hold = {1, 2}
    first = pool.submit(client.post, path, json={}, headers=headers)
    assert probe.started[1].wait(WAIT_S)
    clock.advance(LOCK_FOR)
    second = pool.submit(client.post, path, json={}, headers=headers)
    assert probe.started[2].wait(WAIT_S)  # it took the key over
    return first, second


def test_a_request_that_outlived_its_lock_does_not_overwrite_the_new_owner(
    client: TestClient, app_caller: Caller, clock: FrozenClock, probe: Probe
) -> None:
    headers = _with_key(app_caller, "too-slow")
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = _overtaken(pool, client, "/v1/_slow", headers, clock, probe)

        probe.release[1].set()
        assert first.result(timeout=WAIT_S).json() == {"call": 1}
        # The late first response was not stored: the key still belongs to the second.
        _assert_problem(
            client.post("/v1/_slow", json={}, headers=headers), 409, "idempotency_key_in_use"
        )

        probe.release[2].set()
        assert second.result(timeout=WAIT_S).json() == {"call": 2}

    replay = client.post("/v1/_slow", json={}, headers=headers)
    assert replay.json() == {"call": 2}
    assert replay.headers["idempotent-replayed"] == "true"


# The outcome is kept with the work ------------------------------------------------------------


class _Call(BaseModel):
    call: int


WORK_SCOPE = "probe:work"
"""The rows a `SessionRoute` probe writes as its work (any table would do)."""


def _work_done(database: Database) -> list[str]:
    with database.session_scope(read_only=True) as session:
        return list(
            session.scalars(
                select(IdempotencyRecord.key).where(IdempotencyRecord.scope == WORK_SCOPE)
            )
        )


@pytest.fixture
def working_probe(app: FastAPI, probe: Probe, clock: FrozenClock) -> Probe:
    """`POST /v1/_work`: a `SessionRoute` endpoint (as every knowpay route is) that writes a
    row in the request's transaction, held like `_slow`."""
    router = APIRouter(route_class=SessionRoute)

    @router.post("/v1/_work", status_code=201, response_model=_Call)
    def work(session: DbSession) -> _Call:
        call = probe.next_call()
        probe.started[call].set()
        if call in probe.hold:
            assert probe.release[call].wait(WAIT_S)
        session.add(
            IdempotencyRecord(
                scope=WORK_SCOPE,
                key=str(call),
                request_fingerprint="0" * 64,
                state="completed",
                created_at=clock.now(),
                expires_at=clock.now() + KEEP_FOR,
            )
        )
        return _Call(call=call)

    @router.post("/v1/_text", response_class=PlainTextResponse)
    def text(session: DbSession) -> str:
        return f"call {probe.next_call()}"

    app.include_router(router)
    return probe


def _losing_the_answer(app: FastAPI) -> Any:
    """The app behind a connection that breaks as the answer starts to go out: after the
    endpoint committed, before the client (or the middleware's own bookkeeping) saw it."""

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_nothing(message: Message) -> None:
            if message["type"] == "http.response.start":
                raise ConnectionResetError("the connection broke")
            await send(message)

        await app(scope, receive, send_nothing)

    return broken


def test_an_answer_lost_after_the_commit_is_replayed_not_run_again(
    client: TestClient, app: FastAPI, app_caller: Caller, database: Database
) -> None:
    headers = _with_key(app_caller, "lost-answer")
    with pytest.raises(ConnectionResetError):
        TestClient(_losing_the_answer(app)).post("/v1/products", json=PRODUCT, headers=headers)
    assert _count_products(database) == 1  # the work was done and kept

    retry = client.post("/v1/products", json=PRODUCT, headers=headers)

    assert retry.status_code == 201, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert _count_products(database) == 1
    [record] = _records(database)
    assert record.state == "completed"


def test_the_work_of_a_request_that_outlived_its_lock_is_rolled_back(
    client: TestClient,
    app_caller: Caller,
    database: Database,
    clock: FrozenClock,
    working_probe: Probe,
) -> None:
    headers = _with_key(app_caller, "outlived")
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = _overtaken(pool, client, "/v1/_work", headers, clock, working_probe)

        working_probe.release[1].set()
        _assert_problem(first.result(timeout=WAIT_S), 409, "idempotency_key_in_use")
        assert _work_done(database) == []

        working_probe.release[2].set()
        taken_over = second.result(timeout=WAIT_S)
        assert (taken_over.status_code, taken_over.json()) == (201, {"call": 2})

    replay = client.post("/v1/_work", json={}, headers=headers)
    assert replay.json() == {"call": 2}
    assert replay.headers["idempotent-replayed"] == "true"
    assert _work_done(database) == ["2"]


def test_an_answer_the_endpoint_does_not_render_as_json_is_stored_as_it_goes_out(
    client: TestClient, app_caller: Caller, working_probe: Probe
) -> None:
    headers = _with_key(app_caller, "text")
    first = client.post("/v1/_text", headers=headers)
    replay = client.post("/v1/_text", headers=headers)

    assert (first.status_code, first.text) == (200, "call 1")
    assert (replay.text, replay.headers["idempotent-replayed"]) == ("call 1", "true")
    assert replay.headers["content-type"] == first.headers["content-type"]


# Requests it leaves alone and bad keys --------------------------------------------------------


def test_requests_without_the_header_are_unaffected(
    client: TestClient, app_caller: Caller, database: Database
) -> None:
    first = client.post("/v1/products", json=PRODUCT, headers=app_caller.headers)
    second = client.post("/v1/products", json=PRODUCT, headers=app_caller.headers)
    listed = client.get("/v1/products", headers=_with_key(app_caller, "ignored"))

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in second.headers
    assert listed.status_code == 200
    assert _count_products(database) == 2
    assert _records(database) == []


@pytest.mark.parametrize(
    "header",
    [
        [("Idempotency-Key", "")],
        [("Idempotency-Key", "k" * 256)],
        [("Idempotency-Key", "caf\u00e9".encode())],
        [("Idempotency-Key", "tab\there")],
        [("Idempotency-Key", "one"), ("Idempotency-Key", "two")],
    ],
    ids=["empty", "too-long", "non-ascii", "control", "twice"],
)
def test_a_bad_key_is_400(
    client: TestClient,
    app_caller: Caller,
    database: Database,
    header: list[tuple[str, str | bytes]],
) -> None:
    headers = list(app_caller.headers.items()) + header
    response = client.post("/v1/products", json=PRODUCT, headers=headers)

    _assert_problem(response, 400, "invalid_idempotency_key")
    assert _count_products(database) == 0
    assert _records(database) == []


def test_the_longest_key_is_accepted(client: TestClient, app_caller: Caller) -> None:
    headers = _with_key(app_caller, "k" * 255)
    assert client.post("/v1/products", json=PRODUCT, headers=headers).status_code == 201
    replay = client.post("/v1/products", json=PRODUCT, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"


# Purging --------------------------------------------------------------------------------------


def test_purge_expired_deletes_only_expired_records(
    client: TestClient, app_caller: Caller, database: Database, clock: FrozenClock
) -> None:
    client.post("/v1/products", json=PRODUCT, headers=_with_key(app_caller, "old"))
    clock.advance(timedelta(hours=12))
    client.post("/v1/products", json=PRODUCT, headers=_with_key(app_caller, "new"))
    clock.advance(timedelta(hours=12))

    with database.session_scope() as session:
        assert purge_expired(session, clock.now()) == 1

    assert [r.key for r in _records(database)] == ["new"]


def test_an_idempotent_post_looks_its_api_key_up_once(
    client: TestClient, app_caller: Caller, app: FastAPI
) -> None:
    """The key's claim names the caller; the endpoint reuses that instead of a second query."""
    with statements_sent(app.state.database.engine) as statements:
        created = client.post("/v1/products", json=PRODUCT, headers=_with_key(app_caller, "k1"))
        plain = client.post("/v1/products", json=PRODUCT, headers=app_caller.headers)

    assert (created.status_code, plain.status_code) == (201, 201)
    api_key_lookups = [s for s in statements if "FROM api_keys" in s]
    assert len(api_key_lookups) == 2  # one per request, with or without an Idempotency-Key


def test_no_password_reaches_a_stored_fingerprint(
    client: TestClient, app_caller: Caller, database: Database, probe: Probe
) -> None:
    """Found by an audit: a wallet payment's body carries a 6-digit payment password, and a
    sha256 of the body in the database gave it away to a million guesses (a login password
    in POST /v1/users to a dictionary). Password fields are emptied before hashing."""
    headers = {**_with_key(app_caller, "with-password"), "Content-Type": "application/json"}
    body = b'{"channel":"wallet","payment_password":"135790"}'
    assert client.post("/v1/_echo", content=body, headers=headers).status_code == 201
    [record] = [r for r in _records(database) if r.key == "with-password"]
    emptied = b'{"channel":"wallet","payment_password":""}'
    assert record.request_fingerprint != request_fingerprint("POST", "/v1/_echo", b"", body)
    assert record.request_fingerprint == request_fingerprint(
        "POST", "/v1/_echo", b"", without_secrets(emptied)
    )
    # The same request but for its password is the same request: its answer is replayed.
    other_password = b'{"channel":"wallet","payment_password":"000000"}'
    replay = client.post("/v1/_echo", content=other_password, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    other_channel = b'{"channel":"test","payment_password":"135790"}'
    _assert_problem(
        client.post("/v1/_echo", content=other_channel, headers=headers),
        422,
        "idempotency_key_reused",
    )


@pytest.mark.parametrize(
    ("body", "left"),
    [
        (b'{"password": "Summer2026!", "email": "a@example.com"}', b"a@example.com"),
        (b"username=a%40example.com&password=Summer2026%21", b"a%40example.com"),
        (b'{"new_password": "123456", "current_password": "654321"}', b"new_password"),
    ],
)
def test_password_fields_are_emptied_in_json_and_forms(body: bytes, left: bytes) -> None:
    kept = without_secrets(body)
    for secret in (b"Summer2026", b"123456", b"654321"):
        assert secret not in kept
    assert left in kept


def test_a_body_without_passwords_is_fingerprinted_as_sent() -> None:
    for body in (b'{"a": 1}', b"", b"not json at all", b'["password"]'):
        assert without_secrets(body) == body
