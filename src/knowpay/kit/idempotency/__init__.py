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

What lives where (each module imports only modules listed above it):

- `_shared`: the logger, the key's lifetimes and states, and the decisions taken when a key is
  claimed (proceed, refuse, replay, pass through) with the claim a running request holds.
- `sealing`: stored response bodies sealed with the secret box, and resealing them.
- `claims`: claiming a key in a transaction of its own (new, expired, or taken over from a
  request that outlived its lock), and purging expired records.
- `outcomes`: storing a request's outcome (with the endpoint's work, as an interim answer, or
  as the response leaves) under its claim's fencing token, or releasing the claim.
- `middleware`: the ASGI middleware: the header, the request's fingerprint, the replay.
"""

from knowpay.kit.idempotency._shared import KEEP_FOR, LOCK_FOR
from knowpay.kit.idempotency.claims import purge_expired
from knowpay.kit.idempotency.middleware import (
    HEADER,
    REPLAYED_HEADER,
    IdempotencyMiddleware,
    ScopeResolver,
    request_fingerprint,
    without_secrets,
)
from knowpay.kit.idempotency.outcomes import (
    IdempotencyKeyTakenOver,
    keep_interim_outcome,
    outcome_kept_with,
)
from knowpay.kit.idempotency.sealing import reseal_bodies

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
    "without_secrets",
]
