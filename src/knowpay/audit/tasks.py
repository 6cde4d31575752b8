"""The sealing job: chain every committed audit record (scheduled, and before verifying)."""

from __future__ import annotations

from knowpay.audit import service
from knowpay.kit.clock import Clock
from knowpay.kit.db import Database

BATCH_SIZE = 500


def seal_pending(database: Database, clock: Clock, *, wait: bool = False) -> int:
    """Seal until nothing committed is left unsealed, one short transaction per batch; returns
    how many were sealed. Skips (0) when another process is sealing, unless `wait`."""
    total = 0
    while True:
        with database.session_scope() as session:
            sealed = service.seal_batch(session, clock.now(), limit=BATCH_SIZE, wait=wait)
        total += sealed
        if sealed < BATCH_SIZE:
            return total
