"""Idempotency-Key for POST under /v1, as a pure ASGI middleware (see docs/idempotency.md).

All state lives in the `idempotency_keys` table, so the guarantee holds across any number of
server processes. A request claims its key in a short transaction of its own before the
endpoint runs. Its outcome is stored in the endpoint's own transaction, with the work, when
the endpoint is a `SessionRoute` (every knowpay route; see `outcome_kept_with`); otherwise,
and for an error the endpoint raised, in a second short transaction before the last byte of
the response leaves. After a 5xx the claim is deleted instead.

A claim stamps `locked_until = now + 60 s`. That moment doubles as the claim's fencing token:
the outcome is written only while the row still carries it, so a request whose key was taken
over (because it outlived its lock, e.g. its process crashed) never overwrites the new owner.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import anyio.to_thread
from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowpay.kit.clock import Clock
from knowpay.kit.crypto import SecretBox
from knowpay.kit.db import Database, insert_unless_present
from knowpay.kit.errors import Conflict, problem_response
from knowpay.kit.idempotency_models import IdempotencyRecord

logger = logging.getLogger("knowpay.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
LOCK_FOR = timedelta(seconds=60)
KEEP_FOR = timedelta(hours=24)

IN_PROGRESS = "in_progress"
COMPLETED = "completed"

_HEADER_BYTES = HEADER.lower().encode("latin-1")
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_REPLAYED_HEADERS = (b"content-type", b"location")
_MAX_SCOPE_LENGTH = 80  # the width of idempotency_keys.scope
_CLAIM_ATTEMPTS = 5

ScopeResolver = Callable[[Request, Session], str | None]
"""Who is calling: the scope their keys live in, or None when they cannot be authenticated.

Called in a worker thread with the claim's own session (an API key is looked up in the same
transaction that claims the key: one round of connection, BEGIN and COMMIT, not two)."""


def request_fingerprint(method: str, path: str, query_string: bytes, body: bytes) -> str:
    """sha256 over the method, path, query string and raw body, each length-prefixed."""
    digest = hashlib.sha256()
    for part in (method.upper().encode("latin-1"), path.encode("utf-8"), query_string, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def purge_expired(session: Session, now: datetime) -> int:
    """Delete every record past its expiry; the number deleted. The caller commits."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


# Decisions taken when the key is claimed ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PassThrough:
    """The caller is not authenticated: no idempotency handling (the endpoint answers 401)."""


@dataclass(frozen=True, slots=True)
class _Proceed:
    """This request owns the key: run the endpoint, then store the outcome under `token`."""

    scope: str
    key: str
    token: datetime


@dataclass(slots=True)
class _Pending:
    """A claim while its request runs; `stored` once its outcome was committed with the
    endpoint's work, so the middleware has nothing left to store."""

    claim: _Proceed
    box: SecretBox | None
    stored: bool = False


_PENDING_STATE = "knowpay.idempotency_claim"
"""Where the middleware leaves the `_Pending` claim in the ASGI scope's request state."""


class IdempotencyKeyTakenOver(Conflict):
    """The request outlived its key's lock and another request took the key over; its work
    is rolled back so that only the new owner's is kept."""

    code = "idempotency_key_in_use"
    title = "The idempotency key is in use"


@dataclass(frozen=True, slots=True)
class _Refuse:
    status: int
    code: str
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Replay:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


_Decision = _PassThrough | _Proceed | _Refuse | _Replay

_IN_USE = _Refuse(
    409,
    "idempotency_key_in_use",
    "The idempotency key is in use",
    "A request with this Idempotency-Key is still being processed; retry later.",
)
_REUSED = _Refuse(
    422,
    "idempotency_key_reused",
    "The idempotency key was used for another request",
    "This Idempotency-Key was already used with a different method, path, query or body.",
)


def _scope_column(scope: str) -> str:
    if len(scope) <= _MAX_SCOPE_LENGTH:
        return scope
    return "sha256:" + hashlib.sha256(scope.encode("utf-8")).hexdigest()


# Stored responses can carry secrets shown once (a webhook endpoint's signing secret, a new API
# key): they are sealed with the secret box, bound to their scope and key.
_SEALED_BODY_PREFIX = b"v2:"


def _body_context(scope: str, key: str) -> str:
    return f"idempotency_key:{scope}:{key}"


def _seal_body(box: SecretBox | None, scope: str, key: str, body: bytes) -> bytes:
    if box is None:
        return body
    return box.seal_bytes(body, context=_body_context(scope, key)).encode("ascii")


def _open_body(box: SecretBox | None, scope: str, key: str, stored: bytes) -> bytes:
    """A stored response body; one stored before sealing began is returned as it is."""
    if box is None or not stored.startswith(_SEALED_BODY_PREFIX):
        return stored
    return box.open_bytes(stored.decode("ascii"), context=_body_context(scope, key))


def reseal_bodies(session: Session, opener: SecretBox, sealer: SecretBox) -> int:
    """Re-encrypt every stored response body under `sealer`'s key (`knowpay secrets rotate`);
    bodies stored before sealing began are sealed now. Returns how many."""
    count = 0
    for record in session.scalars(
        select(IdempotencyRecord).where(IdempotencyRecord.response_body.is_not(None))
    ).all():
        plain = _open_body(opener, record.scope, record.key, record.response_body or b"")
        record.response_body = _seal_body(sealer, record.scope, record.key, plain)
        count += 1
    return count


def _restart(record: IdempotencyRecord, fingerprint: str, now: datetime) -> None:
    record.request_fingerprint = fingerprint
    record.state = IN_PROGRESS
    record.locked_until = now + LOCK_FOR
    record.response_status = None
    record.response_headers = None
    record.response_body = None
    record.created_at = now
    record.expires_at = now + KEEP_FOR


def _claim_once(
    session: Session, scope: str, key: str, fingerprint: str, now: datetime
) -> _Decision | None:
    """One claim attempt in one transaction; None when the row vanished under us."""
    # A key seen before (or claimed concurrently) is no error: then the row is looked at.
    claimed = insert_unless_present(
        session,
        IdempotencyRecord,
        {
            "scope": scope,
            "key": key,
            "request_fingerprint": fingerprint,
            "state": IN_PROGRESS,
            "locked_until": now + LOCK_FOR,
            "created_at": now,
            "expires_at": now + KEEP_FOR,
        },
        unique=("scope", "key"),
    )
    if claimed is not None:
        return _Proceed(scope, key, now + LOCK_FOR)
    record = session.scalars(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if record is None:
        return None
    if record.expires_at <= now:
        _restart(record, fingerprint, now)
        return _Proceed(scope, key, now + LOCK_FOR)
    if record.request_fingerprint != fingerprint:
        return _REUSED
    if record.state == COMPLETED and record.response_status is not None:
        if record.locked_until is not None and record.locked_until > now:
            # An interim answer, and the request that stored it is still running: its final
            # answer is yet to come (after a crash, the lock's end lets the interim one out).
            return _IN_USE
        headers = [(str(n), str(v)) for n, v in json.loads(record.response_headers or "[]")]
        return _Replay(record.response_status, headers, record.response_body or b"")
    if record.locked_until is not None and record.locked_until > now:
        return _IN_USE
    # The owner outlived its lock (crashed, or far too slow): take the key over.
    logger.warning("taking over a stale idempotency key", extra={"idempotency_scope": scope})
    _restart(record, fingerprint, now)
    return _Proceed(scope, key, now + LOCK_FOR)


def _claim(
    database: Database,
    resolve: Callable[[Session], str | None],
    key: str,
    fingerprint: str,
    clock: Clock,
) -> tuple[str, _Decision] | None:
    """Name the caller and claim the key in one transaction (retried when the row vanished
    under us); None when the caller cannot be authenticated."""
    for _ in range(_CLAIM_ATTEMPTS):
        with database.session_scope() as session:
            caller = resolve(session)
            if caller is None:
                return None
            owner = _scope_column(caller)
            decision = _claim_once(session, owner, key, fingerprint, clock.now())
        if decision is not None:
            return owner, decision
    raise RuntimeError("the idempotency key kept changing under concurrent requests")


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
    which: ColumnElement[bool],
    claim: _Proceed,
    outcome: _Outcome,
    box: SecretBox | None,
    *,
    interim: bool = False,
) -> bool:
    """Mark the claimed row completed with `outcome`; False if it is no longer this claim's.
    An interim outcome keeps the claim's token, so that the final one can replace it."""
    result = session.execute(
        update(IdempotencyRecord)
        .where(which)
        .values(
            state=COMPLETED,
            locked_until=claim.token if interim else None,
            response_status=outcome.status,
            response_headers=json.dumps(outcome.headers),
            response_body=_seal_body(box, claim.scope, claim.key, outcome.body),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


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
        stored = _write_outcome(session, _owned(claim), claim, _Outcome(status, headers, body), box)
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
        session, _claimed_by(pending.claim), pending.claim, outcome, pending.box, interim=interim
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


# The middleware ------------------------------------------------------------------------------


def _applies(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    path: str = scope["path"]
    return path == "/v1" or path.startswith("/v1/")


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None if the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class IdempotencyMiddleware:
    """Replays the first response to a POST retried with the same Idempotency-Key.

    Install it inside the request-id and body-size middleware. `resolve_scope` names the
    caller (see `ScopeResolver`); the database and the clock come from `app.state`.
    """

    def __init__(self, app: ASGIApp, resolve_scope: ScopeResolver) -> None:
        self.app = app
        self.resolve_scope = resolve_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _applies(scope):
            await self.app(scope, receive, send)
            return
        values = [v for k, v in scope.get("headers") or [] if k.lower() == _HEADER_BYTES]
        if not values:
            await self.app(scope, receive, send)
            return
        key = values[0].decode("latin-1") if len(values) == 1 else ""
        if not _VALID_KEY.fullmatch(key):
            refusal = _Refuse(
                400,
                "invalid_idempotency_key",
                "The idempotency key is not valid",
                f"Send one {HEADER} header of 1 to 255 printable ASCII characters.",
            )
            await self._refuse(refusal, scope, receive, send)
            return

        body = await _read_body(receive)
        if body is None:
            return  # the client is gone; there is no one to answer
        replayed_body = False

        async def receive_body() -> Message:
            nonlocal replayed_body
            if not replayed_body:
                replayed_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        state = scope["app"].state
        database: Database = state.database
        clock: Clock = state.clock
        box: SecretBox | None = getattr(state, "secret_box", None)
        fingerprint = request_fingerprint(
            scope["method"], scope["path"], scope.get("query_string", b""), body
        )
        request = Request(scope)

        def begin() -> _Decision:
            claim = _claim(
                database,
                lambda session: self.resolve_scope(request, session),
                key,
                fingerprint,
                clock,
            )
            if claim is None:
                return _PassThrough()
            owner, decision = claim
            if isinstance(decision, _Replay):
                body = _open_body(box, owner, key, decision.body)
                return _Replay(decision.status, decision.headers, body)
            return decision

        decision = await anyio.to_thread.run_sync(begin)
        if isinstance(decision, _PassThrough):
            await self.app(scope, receive_body, send)
        elif isinstance(decision, _Refuse):
            await self._refuse(decision, scope, receive_body, send)
        elif isinstance(decision, _Replay):
            await self._replay(decision, scope, receive_body, send)
        else:
            await self._run(decision, database, box, scope, receive_body, send)

    async def _run(
        self,
        claim: _Proceed,
        database: Database,
        box: SecretBox | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run the endpoint; store its response (or drop the claim on a 5xx, or on an answer
        with Retry-After: one that says "try again" is not the request's result) before the
        response's last chunk is sent, so a client that has it can never see 409 on retry."""
        status = 0
        try_again = False
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        settled = False
        pending = _Pending(claim, box)
        scope.setdefault("state", {})[_PENDING_STATE] = pending

        async def settle(outcome_status: int | None) -> None:
            nonlocal settled
            settled = True
            if pending.stored:  # committed with the endpoint's work
                return
            if outcome_status is None or outcome_status >= 500 or try_again:
                await anyio.to_thread.run_sync(_release, database, claim)
                return
            stored = await anyio.to_thread.run_sync(
                _complete, database, claim, outcome_status, headers, b"".join(chunks), box
            )
            if not stored:
                logger.warning(
                    "idempotency key was taken over, or holds an interim answer, before the "
                    "response was stored"
                )

        async def capture(message: Message) -> None:
            nonlocal status, try_again
            if message["type"] == "http.response.start":
                status = int(message["status"])
                try_again = any(
                    name.lower() == b"retry-after" for name, _ in message.get("headers", [])
                )
                headers.extend(
                    (name.decode("latin-1").lower(), value.decode("latin-1"))
                    for name, value in message.get("headers", [])
                    if name.lower() in _REPLAYED_HEADERS
                )
            elif message["type"] == "http.response.body" and not settled:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await settle(status)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            if not settled:
                with anyio.CancelScope(shield=True):
                    await settle(None)
            raise
        if not settled:  # the endpoint never finished a response
            await settle(None)

    async def _refuse(self, refusal: _Refuse, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope),
            status=refusal.status,
            code=refusal.code,
            title=refusal.title,
            detail=refusal.detail,
        )
        await response(scope, receive, send)

    async def _replay(self, replay: _Replay, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(replay.headers)
        headers[REPLAYED_HEADER.lower()] = "true"
        response = Response(content=replay.body, status_code=replay.status, headers=headers)
        await response(scope, receive, send)


__all__ = [
    "HEADER",
    "KEEP_FOR",
    "LOCK_FOR",
    "REPLAYED_HEADER",
    "IdempotencyKeyTakenOver",
    "IdempotencyMiddleware",
    "ScopeResolver",
    "keep_interim_outcome",
    "outcome_kept_with",
    "purge_expired",
    "request_fingerprint",
    "reseal_bodies",
]
