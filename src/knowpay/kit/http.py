"""The one outbound HTTP client: timeouts on every call, retries only where a call is
idempotent, and logs that never show secrets."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from knowpay.kit.request_threads import lending_turn

logger = logging.getLogger("knowpay.http")
T = TypeVar("T")

_SECRET_FIELDS = re.compile(
    r'("?(?:sign|signature|private_key|secret|password|apiv3_key|client_secret|authorization)"?\s*[:=]\s*)'
    r'("[^"]*"|[^&,\s]+)',
    re.IGNORECASE,
)


def mask(text: str, limit: int = 500) -> str:
    """A log-safe excerpt: signatures, keys and secrets replaced by ***, and NUL written
    out (an answer may carry one, and PostgreSQL's text columns cannot hold it)."""
    return _SECRET_FIELDS.sub(r"\1***", text).replace("\x00", "\\x00")[:limit]


# How long an idle kept-alive connection is used again. Servers close idle connections after
# their own keep-alive timeout (uvicorn's and Apache's default: 5 s); a request sent on one
# whose close is on its way is reset, and a gateway call sent once (a payment's creation)
# would fail for it. A second's margin below the commonest timeout.
KEEPALIVE_EXPIRY_S = 4.0


def make_client(
    *,
    base_url: str = "",
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 10.0,
    keepalive_expiry_s: float = KEEPALIVE_EXPIRY_S,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client with explicit connect and read timeouts, idle connections given up
    before servers commonly close them, and no proxies from the environment."""
    timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
    return _TurnLendingClient(
        base_url=base_url,
        timeout=timeout,
        limits=httpx.Limits(keepalive_expiry=keepalive_expiry_s),
        transport=transport,
        trust_env=False,
        event_hooks={"response": [_log_response]},
    )


class _TurnLendingClient(httpx.Client):
    """Lends the calling request thread's turn (`kit.request_threads`) while it waits."""

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with lending_turn():
            return super().send(request, **kwargs)


def _log_response(response: httpx.Response) -> None:
    request = response.request
    logger.info(
        "%s %s -> %s",
        request.method,
        mask(str(request.url.copy_with(query=None))),
        response.status_code,
    )


_ONE_ATTEMPT: ContextVar[bool] = ContextVar("knowpay_http_one_attempt", default=False)


@contextmanager
def one_attempt() -> Iterator[None]:
    """Inside, idempotent calls are tried once: for a call made while an API client waits,
    when a background job sends it again anyway (a refund the gateway cannot answer would
    otherwise hold its request for three timeouts)."""
    token = _ONE_ATTEMPT.set(True)
    try:
        yield
    finally:
        _ONE_ATTEMPT.reset(token)


def call_with_retries(
    call: Callable[[], T],
    *,
    attempts: int = 3,
    retry_on: tuple[type[BaseException], ...] = (httpx.TransportError,),
    max_wait_s: float = 4.0,
) -> T:
    """Run an idempotent call, retrying transport failures with capped, jittered backoff
    (once only inside `one_attempt()`)."""
    retrying = Retrying(
        stop=stop_after_attempt(1 if _ONE_ATTEMPT.get() else attempts),
        wait=wait_exponential_jitter(multiplier=0.2, max=max_wait_s, jitter=0.2),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )
    with lending_turn():  # the pauses between attempts too
        return retrying(call)
