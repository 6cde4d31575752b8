"""What the idempotency modules share: the logger, a key's lifetimes and states, and the
decisions taken when a key is claimed, with the claim a running request holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from knowpay.kit.crypto import SecretBox

logger = logging.getLogger("knowpay.idempotency")

LOCK_FOR = timedelta(seconds=60)
KEEP_FOR = timedelta(hours=24)

IN_PROGRESS = "in_progress"
COMPLETED = "completed"

_REPLAYED_HEADERS = (b"content-type", b"location")


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
