"""Stored response bodies, sealed with the secret box and bound to their scope and key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from knowpay.kit.crypto import SecretBox
from knowpay.kit.idempotency_models import IdempotencyRecord

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
