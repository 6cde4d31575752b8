"""The Stripe API client: form-encoded requests with nested keys, `Authorization: Bearer
sk_…`, a pinned `Stripe-Version`, and an `Idempotency-Key` on every POST that is reused on
every retry of that call (so a retry after a timeout cannot charge or refund twice).

Errors at this edge: transport failures, timeouts, 5xx, 409 (a concurrent request with the
same key) and 429 (rate or lock limits) are retried with capped, jittered backoff and then
become ChannelUnavailable (the outcome is unknown: query later); any other 4xx carrying
Stripe's `{"error": {…}}` is StripeDeclined (a ChannelDeclined) with Stripe's code; an
answer that is not Stripe's JSON is MalformedResponse."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from knowpay.channels.errors import ChannelDeclined, ChannelUnavailable, ProtocolError
from knowpay.kit.config import StripeSettings
from knowpay.kit.http import call_with_retries, make_client
from knowpay.kit.jsontext import NotJson, parse_json

RETRIED_STATUSES = frozenset({409, 429})
USER_AGENT = "knowpay (+stripe channel)"


class MalformedResponse(ProtocolError, ChannelUnavailable):
    """An answer that is not Stripe's JSON: treated as no answer (query later)."""


class StripeDeclined(ChannelDeclined):
    """Stripe refused the request with an error object (kept whole for the adapter)."""

    def __init__(self, status: int, error: Mapping[str, Any]) -> None:
        code = error.get("code") or error.get("type") or f"http_{status}"
        message = error.get("message") or "Stripe refused the request"
        super().__init__(str(code), str(message))
        self.status = status
        self.error = dict(error)
        self.type = str(error.get("type") or "")


class _Retryable(Exception):
    """A 5xx, 409 or 429: retried like a transport failure (the idempotency key makes it safe)."""


def encode_form(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Stripe's form encoding: `metadata[out_trade_no]=…`, `expand[0]=…`, booleans as
    `true`/`false`; None values are left out."""
    return list(_flatten(params, None))


def _flatten(value: Any, prefix: str | None) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}[{key}]" if prefix else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    elif value is None or prefix is None:
        return
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    else:
        yield prefix, str(value)


class StripeClient:
    """Talks to api.stripe.com (or the sandbox) with the account's secret key."""

    def __init__(
        self, settings: StripeSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        if settings.secret_key is None or not settings.secret_key.get_secret_value():
            raise ValueError("Stripe needs a secret_key")
        self._secret_key = settings.secret_key.get_secret_value()
        self.api_version = settings.api_version
        self._http = make_client(
            base_url=settings.base_url.rstrip("/"),
            connect_timeout_s=min(5.0, settings.timeout_s),
            read_timeout_s=settings.timeout_s,
            transport=transport,
        )

    @property
    def livemode(self) -> bool | None:
        """Whether the key is a live one (sk_live_/rk_live_), a test one, or unknown."""
        for prefix, live in (("sk_live_", True), ("rk_live_", True), ("sk_test_", False),
                             ("rk_test_", False)):  # fmt: skip
            if self._secret_key.startswith(prefix):
                return live
        return None

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A GET (a read: retried freely)."""
        query = urlencode(encode_form(params or {}))
        target = f"{path}?{query}" if query else path
        return self._send(lambda: self._http.get(target, headers=self._headers()))

    def post(self, path: str, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """A POST with its idempotency key: every retry sends the same key and body, so Stripe
        answers a repeat with the first answer instead of acting twice."""
        body = urlencode(encode_form(params)).encode("ascii")
        headers = {
            **self._headers(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Idempotency-Key": idempotency_key,
        }
        return self._send(lambda: self._http.post(path, content=body, headers=headers))

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._secret_key}",
            "Stripe-Version": self.api_version,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    def _send(self, request: Callable[[], httpx.Response]) -> dict[str, Any]:
        def attempt() -> httpx.Response:
            response = request()
            if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
                if response.headers.get("stripe-should-retry") == "false":
                    return response
                raise _Retryable(f"HTTP {response.status_code}")
            return response

        try:
            response = call_with_retries(
                attempt, retry_on=(httpx.TransportError, _Retryable), max_wait_s=2.0
            )
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"Stripe cannot be reached: {type(exc).__name__}") from exc
        except _Retryable as exc:
            raise ChannelUnavailable(f"Stripe answered {exc} on every try") from exc
        return _answer(response)


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = parse_json(response.content)
    except NotJson as exc:
        raise MalformedResponse(f"Stripe answered HTTP {response.status_code}, not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedResponse(f"Stripe answered HTTP {response.status_code} with a non-object")
    if response.is_success:
        return body
    error = body.get("error")
    if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
        raise ChannelUnavailable(f"Stripe answered HTTP {response.status_code}: {error}")
    if not isinstance(error, dict):
        raise MalformedResponse(f"Stripe answered HTTP {response.status_code} without an error")
    raise StripeDeclined(response.status_code, error)
