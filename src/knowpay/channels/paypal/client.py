"""The PayPal REST client: an OAuth2 client-credentials token (cached until shortly before
it expires, fetched again once on a 401), JSON calls with `PayPal-Request-Id`, and PayPal's
errors translated at this edge.

Every call knowpay makes is safe to repeat: reads and the JSON-patch `replace` are
idempotent, and create, capture and refund carry a `PayPal-Request-Id` that makes a repeat a
replay. So transport failures, 429, 409 and 5xx are retried here (capped, jittered) and then
become ChannelUnavailable; other 4xx become ChannelDeclined(issue, description)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from knowpay.channels.errors import ChannelDeclined, ChannelUnavailable, ProtocolError
from knowpay.kit.clock import Clock
from knowpay.kit.config import PayPalSettings
from knowpay.kit.http import call_with_retries, make_client, mask
from knowpay.kit.jsontext import NotJson, parse_json

TOKEN_PATH = "/v1/oauth2/token"  # noqa: S105 - a path, not a secret
AUTHENTICATION_FAILURE = "AUTHENTICATION_FAILURE"
_RETRYABLE_STATUS = frozenset({409, 429})


class MalformedResponse(ProtocolError, ChannelUnavailable):
    """An answer that is not PayPal's JSON: treated as no answer (ask again later)."""


class ResourceNotFound(ChannelDeclined):
    """A 404: PayPal has no such order, capture or refund (never made, or expired)."""


class _Retryable(Exception):
    """A 5xx, 429 or 409: retried like a transport failure."""


class _Expired(Exception):
    """A 401 with a cached token: fetch a new token and try once more."""


class PayPalClient:
    """Talks to one PayPal REST app (client id + secret) at `base_url`."""

    def __init__(
        self,
        settings: PayPalSettings,
        clock: Clock,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not (settings.client_id and settings.client_secret and settings.webhook_id):
            raise ValueError("PayPal needs client_id, client_secret and webhook_id")
        self.client_id = settings.client_id
        self.webhook_id = settings.webhook_id
        self.base_url = settings.base_url.rstrip("/")
        self.clock = clock
        self._secret = settings.client_secret.get_secret_value()
        self._http = make_client(
            base_url=self.base_url,
            connect_timeout_s=min(5.0, settings.timeout_s),
            read_timeout_s=settings.timeout_s,
            transport=transport,
        )
        self._token_lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def close(self) -> None:
        self._http.close()

    # The token ----------------------------------------------------------------------------

    def _access_token(self) -> tuple[str, bool]:
        """(token, fresh): the cached token, or a new one when none is cached or it is due."""
        with self._token_lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return self._token[0], False
            token, expires_in = self._fetch_token()
            # Renew well before PayPal's expiry (9 h by default), never later than halfway.
            margin = min(300.0, expires_in / 2)
            self._token = (token, time.monotonic() + expires_in - margin)
            return token, True

    def _forget_token(self, token: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token[0] == token:
                self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        response = self._http.post(
            TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self._secret),
            headers={"Accept": "application/json"},
        )
        if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
            raise _Retryable(f"token: HTTP {response.status_code}")
        data = _json(response)
        if response.status_code != 200:
            code = str(data.get("error") or f"http_{response.status_code}")
            message = str(data.get("error_description") or "PayPal refused the credentials")
            raise ChannelDeclined(code, message)
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise MalformedResponse("the token answer has no access_token or expires_in")
        return token, float(expires_in)

    # Calls --------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw_body: bytes | None = None,
        request_id: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One REST call; its JSON answer ({} for 204). `raw_body` is sent byte for byte."""
        content = raw_body if raw_body is not None else _dump(body) if body is not None else None
        headers = {"Accept": "application/json", "Prefer": "return=representation"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if request_id:
            headers["PayPal-Request-Id"] = request_id

        def once() -> dict[str, Any]:
            token, fresh = self._access_token()
            try:
                return self._send(method, path, content, params, {**headers}, token, fresh)
            except _Expired:
                self._forget_token(token)
                token, _ = self._access_token()
                return self._send(method, path, content, params, {**headers}, token, True)

        try:
            return call_with_retries(
                once, retry_on=(httpx.TransportError, _Retryable), max_wait_s=2.0
            )
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"PayPal cannot be reached: {type(exc).__name__}") from exc
        except _Retryable as exc:
            raise ChannelUnavailable(f"PayPal is unavailable: {exc}") from exc

    def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        token: str,
        fresh: bool,
    ) -> dict[str, Any]:
        headers["Authorization"] = f"Bearer {token}"
        response = self._http.request(method, path, content=content, params=params, headers=headers)
        status = response.status_code
        if status >= 500 or status in _RETRYABLE_STATUS:
            raise _Retryable(f"{method} {path}: HTTP {status} {mask(response.text, 200)}")
        if status == 401 and not fresh:
            raise _Expired()
        if 200 <= status < 300:
            return _json(response) if response.content else {}
        data = _json(response, strict=False)
        raise _declined(status, data)

    def fetch_certificate(self, url: str) -> bytes:
        """GET a webhook signing certificate (no credentials sent); retried."""

        def fetch() -> bytes:
            response = self._http.get(url, headers={"Accept": "*/*"})
            if response.status_code >= 500:
                raise _Retryable(f"certificate: HTTP {response.status_code}")
            if response.status_code != 200:
                raise ChannelDeclined(
                    f"http_{response.status_code}", "PayPal refused the certificate download"
                )
            return response.content

        try:
            return call_with_retries(
                fetch, retry_on=(httpx.TransportError, _Retryable), max_wait_s=1.0
            )
        except (httpx.TransportError, _Retryable) as exc:
            raise ChannelUnavailable(f"the certificate cannot be fetched: {exc}") from exc


def _dump(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(response: httpx.Response, *, strict: bool = True) -> dict[str, Any]:
    try:
        data = parse_json(response.content)
    except NotJson as exc:
        if not strict:
            return {}
        raise MalformedResponse(f"PayPal's answer is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        if not strict:
            return {}
        raise MalformedResponse("PayPal's answer is not a JSON object")
    return data


def _declined(status: int, data: Mapping[str, Any]) -> ChannelDeclined:
    """PayPal's error body: `name`, `message`, `details[].issue|description` (OAuth errors:
    `error`, `error_description`). The first detail's issue is the most specific code."""
    details = data.get("details")
    first = details[0] if isinstance(details, list) and details else {}
    first = first if isinstance(first, Mapping) else {}
    code = first.get("issue") or data.get("name") or data.get("error")
    message = first.get("description") or data.get("message") or data.get("error_description")
    if status == 401:
        code = code or AUTHENTICATION_FAILURE
    kind = ResourceNotFound if status == 404 else ChannelDeclined
    return kind(str(code or f"http_{status}"), str(message or f"PayPal answered HTTP {status}"))
