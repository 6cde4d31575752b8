"""Scheduled jobs of refunds: send approved refunds to their gateways (and retry sends the
network lost), ask gateways about refunds still processing, refund duplicate payments."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from knowpay.channels.errors import ChannelError, ProtocolError
from knowpay.channels.types import RefundResult
from knowpay.kit.clock import Clock
from knowpay.kit.db import Database
from knowpay.kit.errors import KnowpayError
from knowpay.payments import service as payments
from knowpay.payments.tasks import backoff
from knowpay.refunds import service
from knowpay.refunds.models import Refund
from knowpay.refunds.states import RefundStatus

logger = logging.getLogger("knowpay.jobs")


@dataclass(frozen=True, slots=True)
class RefundJobContext:
    database: Database
    refunds: service.RefundsContext
    clock: Clock
    batch_size: int = 50


def _claim(ctx: RefundJobContext, refund_id: str, attempts: int) -> bool:
    """Take one refund for this run (a conditional update only one worker wins)."""
    now = ctx.clock.now()
    with ctx.database.session_scope() as session:
        result = session.execute(
            update(Refund)
            .where(
                Refund.id == refund_id,
                Refund.status == RefundStatus.PROCESSING,
                or_(Refund.next_check_at.is_(None), Refund.next_check_at <= now),
            )
            .values(
                next_check_at=now + backoff(attempts + 1), check_attempts=Refund.check_attempts + 1
            )
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1


def _due(ctx: RefundJobContext, *, sending: bool) -> list[tuple[str, int]]:
    now = ctx.clock.now()
    with ctx.database.session_scope(read_only=True) as session:
        rows = session.execute(
            select(Refund.id, Refund.check_attempts)
            .where(
                Refund.status == RefundStatus.PROCESSING,
                Refund.needs_gateway_call.is_(sending),
                or_(Refund.next_check_at.is_(None), Refund.next_check_at <= now),
            )
            .order_by(Refund.next_check_at)
            .limit(ctx.batch_size)
        ).all()
    return [(row[0], row[1]) for row in rows]


def send_refunds(ctx: RefundJobContext) -> int:
    """Send approved refunds to their gateways, with the same refund number on every retry."""
    done = 0
    for refund_id, attempts in _due(ctx, sending=True):
        if _claim(ctx, refund_id, attempts):
            done += _send_one(ctx, refund_id)
    return done


def _gateway_answer(
    ctx: RefundJobContext, refund_id: str, call: Callable[[], RefundResult]
) -> RefundResult | None:
    """The gateway's answer about a refund, or None when there is none to apply yet (the job
    asks again with the same refund number); an answer against the protocol tells staff."""
    try:
        return call()
    except (KnowpayError, ChannelError) as exc:
        logger.warning("refund %s: no answer to apply yet; will ask again: %s", refund_id, exc)
        if isinstance(exc, ProtocolError):
            with ctx.database.session_scope() as session:
                refund = service.get(session, refund_id)
                service.alert_unbelievable_answer(session, refund, exc, ctx.clock.now())
        return None


def _send_one(ctx: RefundJobContext, refund_id: str) -> int:
    with ctx.database.session_scope(read_only=True) as session:
        refund = service.get(session, refund_id)
        request, channel = service.refund_request(ctx.refunds, session, refund), refund.channel
    result = _gateway_answer(
        ctx, refund_id, lambda: service.call_gateway(ctx.refunds, request, channel)
    )
    if result is None:
        return 0
    with ctx.database.session_scope() as session:
        service.record_answer(session, ctx.refunds, refund_id, request, result, ctx.clock.now())
    return 1


def check_processing_refunds(ctx: RefundJobContext) -> int:
    """Ask the gateway about refunds it accepted but has not confirmed (lost notifications)."""
    settled = 0
    for refund_id, attempts in _due(ctx, sending=False):
        if not _claim(ctx, refund_id, attempts):
            continue
        with ctx.database.session_scope(read_only=True) as session:
            refund = service.get(session, refund_id)
            payment = payments.get_payment(session, refund.payment_id)
            out_trade_no, out_refund_no = payment.id, refund.out_refund_no or refund.id
            channel = refund.channel
            ids = {
                "gateway_trade_no": payment.gateway_trade_no,
                "gateway_refund_no": refund.gateway_refund_no,
            }
        query = ctx.refunds.payments.registry.get(channel).query_refund
        result = _gateway_answer(
            ctx, refund_id, functools.partial(query, out_trade_no, out_refund_no, **ids)
        )
        if result is None:
            continue
        with ctx.database.session_scope() as session:
            after = service.apply_result(
                session,
                refund_id,
                result,
                ctx.clock.now(),
                "system",
                ctx.refunds.policy,
                out_refund_no=out_refund_no,
            )
            settled += after.status != RefundStatus.PROCESSING
    return settled


def refund_duplicates(ctx: RefundJobContext) -> int:
    """Start a refund for every duplicate capture that has none yet."""
    with ctx.database.session_scope(read_only=True) as session:
        candidates = [p.id for p in payments.unrefunded_duplicates(session, ctx.batch_size)]
    started = 0
    for payment_id in candidates:
        with ctx.database.session_scope() as session:
            started += (
                service.start_duplicate_refund(session, payment_id, ctx.clock.now()) is not None
            )
    return started
