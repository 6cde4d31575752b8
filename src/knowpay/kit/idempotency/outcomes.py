"""Storing a claimed request's outcome under its claim's fencing token: with the endpoint's
work, as an interim answer, or as the response leaves; or releasing the claim."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from sqlalchemy import ColumnElement, Table, Update, and_, bindparam, delete, update
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.types import Scope

from knowpay.kit.crypto import SecretBox
from knowpay.kit.db import Database
from knowpay.kit.errors import Conflict
from knowpay.kit.idempotency._shared import (
    _PENDING_STATE,
    _REPLAYED_HEADERS,
    COMPLETED,
    IN_PROGRESS,
    _Pending,
    _Proceed,
)
from knowpay.kit.idempotency.sealing import _seal_body
from knowpay.kit.idempotency_models import IdempotencyRecord


class IdempotencyKeyTakenOver(Conflict):
    """The request outlived its key's lock and another request took the key over; its work
    is rolled back so that only the new owner's is kept."""

    code = "idempotency_key_in_use"
    title = "The idempotency key is in use"


def _owned(claim: _Proceed) -> ColumnElement[bool]:
    """The claimed row, as long as no other request has taken it over since."""
    return and_(
        IdempotencyRecord.scope == claim.scope,
        IdempotencyRecord.key == claim.key,
        IdempotencyRecord.state == IN_PROGRESS,
        IdempotencyRecord.locked_until == claim.token,
    )


def _claimed_by(claim: _Proceed) -> ColumnElement[bool]:
    """The claimed row, in progress or completed with an interim answer, as long as no other
    request has taken it over (only a row in progress can be: its token would change)."""
    return and_(
        IdempotencyRecord.scope == claim.scope,
        IdempotencyRecord.key == claim.key,
        IdempotencyRecord.locked_until == claim.token,
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _write_outcome(
    session: Session,
    claim: _Proceed,
    outcome: _Outcome,
    box: SecretBox | None,
    *,
    in_progress_only: bool,
    interim: bool = False,
) -> bool:
    """Mark the claimed row completed with `outcome`; False if it is no longer this claim's
    (`in_progress_only`: nor in progress, see `_owned`, else `_claimed_by`). An interim
    outcome keeps the claim's token, so that the final one can replace it."""
    result = session.execute(
        _update_outcome(in_progress_only),
        {
            "claim_scope": claim.scope,
            "claim_key": claim.key,
            "claim_token": claim.token,
            "new_locked_until": claim.token if interim else None,
            "new_status": outcome.status,
            "new_headers": json.dumps(outcome.headers),
            "new_body": _seal_body(box, claim.scope, claim.key, outcome.body),
        },
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


@functools.cache
def _update_outcome(in_progress_only: bool) -> Update:
    """Built once, as the row's table and not its class: every POST with a key sends it, and
    no session holds the row as an object to keep in step (the claim's own session is gone)."""
    table = cast(Table, IdempotencyRecord.__table__)
    statement = (
        update(table)
        .where(
            table.c.scope == bindparam("claim_scope"),
            table.c.key == bindparam("claim_key"),
            table.c.locked_until == bindparam("claim_token"),
        )
        .values(
            state=COMPLETED,
            locked_until=bindparam("new_locked_until"),
            response_status=bindparam("new_status"),
            response_headers=bindparam("new_headers"),
            response_body=bindparam("new_body"),
        )
    )
    return statement.where(table.c.state == IN_PROGRESS) if in_progress_only else statement


def _complete(
    database: Database,
    claim: _Proceed,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    box: SecretBox | None = None,
) -> bool:
    """Store the request's answer; False when the row is no longer this claim's, or holds an
    interim answer (which then stands, the request being over)."""
    with database.session_scope() as session:
        outcome = _Outcome(status, headers, body)
        stored = _write_outcome(session, claim, outcome, box, in_progress_only=True)
        if not stored:
            _let_interim_answer_stand(session, claim)
        return stored


def _let_interim_answer_stand(session: Session, claim: _Proceed) -> None:
    """The request is over without a final answer: an interim one it stored is now what its
    retries are told, at once rather than when the lock would have run out."""
    session.execute(
        update(IdempotencyRecord)
        .where(_claimed_by(claim), IdempotencyRecord.state == COMPLETED)
        .values(locked_until=None)
    )


def _pending_claim(scope: Scope) -> _Pending | None:
    pending = scope.get("state", {}).get(_PENDING_STATE)
    return pending if isinstance(pending, _Pending) else None


def _write_in_transaction(
    session: Session, pending: _Pending, outcome: _Outcome, *, interim: bool
) -> None:
    if not _write_outcome(
        session, pending.claim, outcome, pending.box, in_progress_only=False, interim=interim
    ):
        raise IdempotencyKeyTakenOver(
            "This request outlived its Idempotency-Key's lock and another request took the "
            "key over; nothing was done. Retry to get that request's response."
        )


@contextmanager
def outcome_kept_with(session: Session, scope: Scope, response: object) -> Iterator[None]:
    """Store the response of a request that claimed an Idempotency-Key in `session`'s
    transaction, which the caller commits inside the block: the work and its replayable
    outcome are kept together or not at all.

    Nothing happens without a claim, for a 5xx (its claim is released instead), or for an
    answer not yet rendered to bytes (the middleware stores that one as it goes out). Raises
    `IdempotencyKeyTakenOver` when the claim is no longer this request's (the caller's work
    must then be rolled back). After a normal exit the middleware stores nothing more."""
    pending = _pending_claim(scope)
    body = getattr(response, "body", None)
    if (
        pending is None
        or not isinstance(response, Response)
        or not isinstance(body, bytes | memoryview)
        or response.status_code >= 500
    ):
        yield
        return
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response.raw_headers
        if name.lower() in _REPLAYED_HEADERS
    ]
    _write_in_transaction(
        session, pending, _Outcome(response.status_code, headers, bytes(body)), interim=False
    )
    yield
    pending.stored = True


def keep_interim_outcome(
    session: Session, scope: Scope, status: int, json_body: Callable[[], bytes]
) -> None:
    """For an endpoint that commits part of its work before it is done (so that the part
    stands before a gateway hears of it): store, in that part's transaction, what a retry
    with the request's Idempotency-Key is told should the rest never run (the process died,
    or a 5xx). The final outcome, kept with the rest of the work, replaces it; a 4xx or a 5xx
    the endpoint raises afterwards does not (the part it describes was kept).

    `json_body` is called only when there is a claim to keep it under. Raises
    `IdempotencyKeyTakenOver` as `outcome_kept_with` does."""
    pending = _pending_claim(scope)
    if pending is None:
        return
    headers = [("content-type", "application/json")]
    outcome = _Outcome(status, headers, json_body())
    _write_in_transaction(session, pending, outcome, interim=True)


def _release(database: Database, claim: _Proceed) -> None:
    """Free the key of a request that ended without an answer to keep (a 5xx, Retry-After),
    unless it stored an interim one: that stands."""
    with database.session_scope() as session:
        session.execute(delete(IdempotencyRecord).where(_owned(claim)))
        _let_interim_answer_stand(session, claim)
