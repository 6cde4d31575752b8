"""ASGI middleware: request ids and a cap on body size."""

from __future__ import annotations

import json
import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowpay.kit import context

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def _client_ip(scope: Scope) -> str | None:
    """The client's address: as the app's trusted proxies resolve it when it has them
    (`app.state.trusted_proxies`), else the peer's."""
    proxies = getattr(getattr(scope.get("app"), "state", None), "trusted_proxies", None)
    if proxies is not None:
        return str(proxies.client_ip(scope))
    client = scope.get("client")
    return str(client[0]) if client else None


class RequestIdMiddleware:
    """Give every request an id (or keep a sane incoming `X-Request-Id`) and echo it; bind
    the request context (id, client IP; the actor once authenticated) for the audit log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        with context.bound(context.RequestContext(request_id=request_id, ip=_client_ip(scope))):
            await self.app(scope, receive, send_with_id)


# GETs that act (a payer's return asks the gateway and may capture; opening content counts
# for refunds): a HEAD there, from a link checker, must not.
GETS_WITH_EFFECTS = ("/return/", "/me/")
HEAD_AS_GET = "knowpay.head_as_get"
"""Set in the scope of a HEAD served as GET: errors name the method the client sent."""


class HeadAsGetMiddleware:
    """HEAD is served as GET (RFC 9110 §9.3.2: every GET resource answers HEAD too); the
    server sends the same status and headers without the body, since the scope it made
    still says HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "HEAD"
            and not str(scope.get("path", "")).startswith(GETS_WITH_EFFECTS)
        ):
            scope = {**scope, "method": "GET", HEAD_AS_GET: True}
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuse bodies larger than `max_bytes` with 413 problem+json before any handler runs."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False
            if too_large:
                await self._refuse(scope, send)
                return
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read it here, within the cap, then replay it.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        request_id = scope.get("state", {}).get("request_id")
        payload = json.dumps(
            {
                "type": "https://knowpay.dev/problems/payload_too_large",
                "title": "The request body is too large",
                "status": 413,
                "detail": f"The body may be at most {self.max_bytes} bytes.",
                "code": "payload_too_large",
                "request_id": request_id,
            }
        ).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if request_id:
            headers.append((b"x-request-id", request_id.encode("latin-1")))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
