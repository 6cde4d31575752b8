"""The Idempotency-Key middleware: which requests it handles, the key and the request's
fingerprint, and running, refusing or replaying a request."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowpay.kit.clock import Clock
from knowpay.kit.crypto import SecretBox
from knowpay.kit.db import Database
from knowpay.kit.errors import problem_response
from knowpay.kit.idempotency._shared import (
    _PENDING_STATE,
    _REPLAYED_HEADERS,
    _Decision,
    _PassThrough,
    _Pending,
    _Proceed,
    _Refuse,
    _Replay,
    logger,
)
from knowpay.kit.idempotency.claims import _claim
from knowpay.kit.idempotency.outcomes import _complete, _release
from knowpay.kit.idempotency.sealing import _open_body

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

_HEADER_BYTES = HEADER.lower().encode("latin-1")
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")

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


_SECRET_FIELD = re.compile(r"(?i).*password")
"""Fields whose values stay out of a stored fingerprint: a 6-digit payment password (or a
login password) hashed with the rest of a body the database also describes falls to a few
million guesses."""


def without_secrets(body: bytes) -> bytes:
    """The body as fingerprinted: a JSON object's or a form's password fields emptied, the
    rest as sent (a body that names no password, or cannot be read, is left as it is). A
    retry under the same key that differs only in a password is the same request, as ever:
    its first answer is replayed."""
    if b"password" not in body.lower():
        return body
    try:
        parsed = json.loads(body)
    except ValueError:
        return _form_without_secrets(body)
    if not isinstance(parsed, dict):
        return body
    emptied = {k: ("" if _SECRET_FIELD.fullmatch(str(k)) else v) for k, v in parsed.items()}
    return b"json:" + json.dumps(emptied, sort_keys=True, separators=(",", ":")).encode()


def _form_without_secrets(body: bytes) -> bytes:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return body
    emptied = [(k, "" if _SECRET_FIELD.fullmatch(k) else v) for k, v in pairs]
    return b"form:" + urlencode(emptied).encode()


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
        parts = (scope["method"], scope["path"], scope.get("query_string", b""))
        fingerprint = request_fingerprint(*parts, without_secrets(body))
        # A key claimed before passwords were left out (it lives 24 h) knows its request.
        accepted = frozenset({fingerprint, request_fingerprint(*parts, body)})
        request = Request(scope)

        def begin() -> _Decision:
            claim = _claim(
                database,
                lambda session: self.resolve_scope(request, session),
                key,
                fingerprint,
                accepted,
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
