"""The job that settles each month once it has ended."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from knowpay.kit.clock import Clock, day_of
from knowpay.kit.db import Database
from knowpay.settlements import service

logger = logging.getLogger("knowpay.jobs")


@dataclass(frozen=True, slots=True)
class SettlementContext:
    database: Database
    clock: Clock
    timezone: str


def settle_last_month(ctx: SettlementContext) -> int:
    """Statements of the month before this one (in the settings' zone), made once; the
    statements made now."""
    now = ctx.clock.now()
    last_month = (day_of(now, ctx.timezone).replace(day=1) - timedelta(days=1)).replace(day=1)
    with ctx.database.session_scope() as session:
        made = len(service.settle(session, last_month, ctx.timezone, now))
    if made:
        logger.info("settled %s: %d statements", f"{last_month:%Y-%m}", made)
    return made
