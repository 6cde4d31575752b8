"""The job that renews subscriptions when their time comes."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from knowpay.kit.clock import Clock
from knowpay.kit.db import Database
from knowpay.subscriptions import service

logger = logging.getLogger("knowpay.jobs")

ERROR_BACKOFF = timedelta(hours=1)
"""How long a subscription whose renewal raised an unexpected error waits to be tried again."""


@dataclass(frozen=True, slots=True)
class RenewalContext:
    database: Database
    clock: Clock
    subscriptions: service.SubscriptionsContext
    batch: int = 100


def renew_subscriptions(ctx: RenewalContext) -> dict[str, int]:
    """Every subscription due now, each in its own transaction (a failure of one leaves the
    others be; a crash mid-way leaves each renewed wholly or not at all). Several processes
    share the work: a row another holds is passed over. Reminders go first, so that a charge
    the job comes to late is still told of before it is made. Returns how many ended which
    way."""
    outcomes: Counter[str] = Counter(_remind(ctx))
    with ctx.database.session_scope(read_only=True) as session:
        due = service.due(session, ctx.clock.now(), ctx.batch)
    for subscription_id in due:
        try:
            with ctx.database.session_scope() as session:
                outcome = service.renew_due(
                    session, ctx.subscriptions, subscription_id, ctx.clock.now()
                )
        except Exception:
            logger.exception(
                "renewing subscription %s failed; it is tried again in %s",
                subscription_id,
                ERROR_BACKOFF,
            )
            _postpone(ctx, subscription_id)
            outcome = "error"
        if outcome is not None:
            outcomes[outcome] += 1
    return dict(outcomes)


def _postpone(ctx: RenewalContext, subscription_id: str) -> None:
    """Behind the others, so that a subscription failing this way cannot hold up the batch."""
    now = ctx.clock.now()
    try:
        with ctx.database.session_scope() as session:
            service.postpone(session, subscription_id, now + ERROR_BACKOFF, now)
    except Exception:
        logger.exception("could not postpone subscription %s", subscription_id)


def _remind(ctx: RenewalContext) -> Counter[str]:
    """Reminders of renewals coming soon, each in its own transaction."""
    with ctx.database.session_scope(read_only=True) as session:
        wanted = service.to_remind(session, ctx.subscriptions, ctx.clock.now(), ctx.batch)
    sent: Counter[str] = Counter()
    for subscription_id in wanted:
        try:
            with ctx.database.session_scope() as session:
                if service.remind(session, ctx.subscriptions, subscription_id, ctx.clock.now()):
                    sent["reminded"] += 1
        except Exception:
            logger.exception(
                "reminding of subscription %s failed; it is tried again", subscription_id
            )
            sent["error"] += 1
    return sent
