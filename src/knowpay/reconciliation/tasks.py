"""Running a reconciliation: the bill is fetched with no transaction open, then matched in
one; and the daily job that reconciles each gateway's newest complete bill once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.exc import IntegrityError

from knowpay.channels.base import Channel
from knowpay.channels.errors import ChannelError
from knowpay.channels.registry import ChannelRegistry
from knowpay.kit.clock import Clock
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.reconciliation import service
from knowpay.reconciliation.errors import BillNotReady, GatewayWithoutBills

logger = logging.getLogger("knowpay.jobs")

RETRY_FAILED_AFTER = timedelta(hours=1)
"""A scheduled run that could not fetch its bill is tried again this much later…"""
MAX_SCHEDULED_TRIES = 24
"""…at most this many times for one gateway's day; then staff run it by hand."""
ABANDONED_AFTER = timedelta(minutes=30)
"""A scheduled run still `running` this long after it started died with its process."""


@dataclass(frozen=True, slots=True)
class ReconciliationContext:
    database: Database
    registry: ChannelRegistry
    clock: Clock


def bill_sources(registry: ChannelRegistry) -> dict[str, service.BillSource]:
    """Every configured gateway whose bills can be fetched, with all of its channels (any
    of them fetches the gateway's whole bill)."""
    grouped: dict[str, list[Channel]] = {}
    for channel in registry.all():
        if channel.profile.has_bills:
            grouped.setdefault(channel.gateway, []).append(channel)
    return {
        gateway: service.BillSource(
            gateway,
            frozenset(c.name for c in channels),
            channels[0].profile,
            channels[0].fetch_bill,
        )
        for gateway, channels in grouped.items()
    }


def reconcile(ctx: ReconciliationContext, gateway: str, bill_date: date, started_by: str) -> str:
    """Fetch one gateway's bill of one day and match it now (staff); returns the run's id.
    A bill that cannot be fetched leaves a `failed` run saying why (and an alert)."""
    sources = bill_sources(ctx.registry)
    source = sources.get(gateway)
    if source is None:
        raise GatewayWithoutBills(
            f"No bill of {gateway!r} can be fetched here; these can: "
            f"{', '.join(sorted(sources)) or 'none'}."
        )
    return _reconcile(ctx, source, bill_date, started_by, schedule_key=None)


def _reconcile(
    ctx: ReconciliationContext,
    source: service.BillSource,
    bill_date: date,
    started_by: str,
    *,
    schedule_key: str | None,
) -> str:
    gateway = source.gateway
    if not source.is_complete(bill_date, ctx.clock.now()):
        raise BillNotReady(
            f"The {gateway} bill of {bill_date} is complete from "
            f"{(source.window(bill_date)[1] + source.profile.bill_ready_after).isoformat()}."
        )
    with ctx.database.session_scope() as session:
        run_id = service.start_run(
            session, gateway, bill_date, started_by, ctx.clock.now(), schedule_key
        ).id
    try:
        bill = source.fetch(bill_date)
    except (ChannelError, KnowpayError) as exc:
        _fail(ctx, run_id, f"{type(exc).__name__}: {exc}")
        return run_id
    except Exception as exc:  # a bill the adapter could not read: a bug to see, and a run
        logger.exception("the %s bill of %s could not be read", gateway, bill_date)
        _fail(ctx, run_id, f"{type(exc).__name__} while reading the bill")
        return run_id
    try:
        with ctx.database.session_scope() as session:
            service.finish_run(session, run_id, source, bill, ctx.clock.now())
    except Exception as exc:
        logger.exception("the %s bill of %s could not be matched", gateway, bill_date)
        _fail(ctx, run_id, f"{type(exc).__name__} while matching the bill")
        raise
    return run_id


def _fail(ctx: ReconciliationContext, run_id: str, reason: str) -> None:
    """The run ends `failed` with the reason (never left `running`), and staff are told."""
    with ctx.database.session_scope() as session:
        service.fail_run(session, run_id, reason, ctx.clock.now())


def reconcile_bills(ctx: ReconciliationContext) -> int:
    """Each gateway's newest complete bill, once (a failed fetch again an hour later): the
    scheduled job. Returns how many runs it made."""
    made = 0
    now = ctx.clock.now()
    for gateway, source in bill_sources(ctx.registry).items():
        bill_date = source.last_complete_day(now)
        key = _next_try(ctx, gateway, bill_date)
        if key is None:
            continue
        try:
            _reconcile(ctx, source, bill_date, "system", schedule_key=key)
        except IntegrityError:
            continue  # another process took this try
        except Exception:  # logged and its run failed: the other gateways still go
            logger.exception("reconciling the %s bill of %s failed", gateway, bill_date)
        made += 1
    return made


def _next_try(ctx: ReconciliationContext, gateway: str, bill_date: date) -> str | None:
    """The schedule key of the next try of this day's bill, or None when none is due."""
    now = ctx.clock.now()
    with ctx.database.session_scope() as session:
        tries = service.scheduled_tries(session, gateway, bill_date)
        if tries:
            last = tries[-1]
            abandoned = last.status == "running" and now - last.started_at >= ABANDONED_AFTER
            if abandoned:  # tried again at once: it never got to fetch or match
                service.fail_run(session, last.id, "abandoned: its process stopped", now)
            elif last.status != "failed":
                return None  # done, or under way
            if len(tries) >= MAX_SCHEDULED_TRIES:
                return None
            if not abandoned and last.finished_at and now - last.finished_at < RETRY_FAILED_AFTER:
                return None
    return f"{gateway}:{bill_date.isoformat()}:{len(tries) + 1}"
