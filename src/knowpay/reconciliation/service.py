"""Matching a gateway's daily bill against the books, and keeping what does not match.

A bill of day D lists the payments and refunds the gateway booked between D 00:00 and
24:00 on its own clock (`ChannelProfile.bill_timezone`). Each line is looked up by its
`out_trade_no` (knowpay's payment id); knowpay's own captures and gateway refunds of that
window that no line names are reported too. Never commits."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from knowpay.alerts.service import raise_alert
from knowpay.audit import service as audit
from knowpay.channels.types import Bill, BillLine, ChannelProfile
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams, page_of
from knowpay.payments.models import Payment
from knowpay.payments.states import PaymentStatus
from knowpay.reconciliation.errors import (
    DiscrepancyNotFound,
    DiscrepancyResolved,
    RunNotFound,
)
from knowpay.reconciliation.models import Discrepancy, ReconciliationRun
from knowpay.reconciliation.schemas import DiscrepancyKind
from knowpay.refunds.models import Refund
from knowpay.refunds.states import RefundStatus


@dataclass(frozen=True, slots=True)
class BillSource:
    """A gateway whose bills can be fetched: its channels, its bill's clock, the fetch."""

    gateway: str
    channels: frozenset[str]
    profile: ChannelProfile
    fetch: Callable[[date], Bill]

    def window(self, bill_date: date) -> tuple[datetime, datetime]:
        """The bill's day on the gateway's clock, as an instant range."""
        start = datetime.combine(bill_date, time.min, self.profile.bill_timezone)
        return start, start + timedelta(days=1)

    def is_complete(self, bill_date: date, now: datetime) -> bool:
        """Whether the gateway has finished the bill of that day."""
        return now >= self.window(bill_date)[1] + self.profile.bill_ready_after

    def last_complete_day(self, now: datetime) -> date:
        """The newest day whose bill is complete."""
        local = (now - self.profile.bill_ready_after).astimezone(self.profile.bill_timezone)
        return local.date() - timedelta(days=1)


@dataclass(slots=True)
class _Finding:
    kind: DiscrepancyKind
    line_kind: Literal["payment", "refund"]
    currency: str
    detail: str
    line: BillLine | None = None
    payment_id: str | None = None
    refund_id: str | None = None
    knowpay_amount_minor: int | None = None


@dataclass(slots=True)
class _Result:
    matched: int = 0
    findings: list[_Finding] = field(default_factory=list)
    totals: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def add(self, currency: str, name: str, amount_minor: int) -> None:
        self.totals[currency][name] += amount_minor

    def count(self, finding: _Finding | None) -> None:
        """A bill line matched (no finding), or what is wrong with it."""
        if finding is None:
            self.matched += 1
        else:
            self.findings.append(finding)


def start_run(
    session: Session,
    gateway: str,
    bill_date: date,
    started_by: str,
    now: datetime,
    schedule_key: str | None = None,
) -> ReconciliationRun:
    """A run about to fetch its bill (`running`); flushed, so a second process taking the
    same scheduled try fails on the unique key."""
    run = ReconciliationRun(
        id=new_id("rcn"),
        gateway=gateway,
        bill_date=bill_date,
        status="running",
        schedule_key=schedule_key,
        started_by=started_by,
        started_at=now,
        totals_json="{}",
        bill_lines=0,
        matched=0,
        discrepancies=0,
    )
    session.add(run)
    session.flush()
    return run


def fail_run(session: Session, run_id: str, error: str, now: datetime) -> ReconciliationRun:
    """The bill could not be fetched or read: the run says why, and staff are told."""
    run = get_run(session, run_id)
    run.status, run.error, run.finished_at = "failed", error[:500], now
    raise_alert(
        session,
        kind="reconciliation_failed",
        subject_id=run.id,
        now=now,
        severity="warning",
        message=f"The {run.gateway} bill of {run.bill_date} could not be reconciled: {error}",
    )
    return run


def finish_run(
    session: Session, run_id: str, source: BillSource, bill: Bill, now: datetime
) -> ReconciliationRun:
    """Match the bill against the books and keep every discrepancy with the run."""
    run = get_run(session, run_id)
    result = _match(session, source, bill)
    for finding in result.findings:
        session.add(_discrepancy(run.id, finding, now))
    run.bill_lines = len(bill.lines)
    run.matched = result.matched
    run.discrepancies = len(result.findings)
    run.totals_json = json.dumps(
        {currency: dict(sums) for currency, sums in sorted(result.totals.items())},
        sort_keys=True,
    )
    run.status = "discrepancies" if result.findings else "balanced"
    run.finished_at = now
    _supersede_earlier_runs(session, run, now)
    if result.findings:
        raise_alert(
            session,
            kind="reconciliation_discrepancies",
            subject_id=run.id,
            now=now,
            message=f"The {run.gateway} bill of {run.bill_date} left {len(result.findings)} "
            f"discrepancies (reconciliation {run.id}).",
        )
    return run


def _supersede_earlier_runs(session: Session, run: ReconciliationRun, now: datetime) -> None:
    """The newest run of a gateway's day is the one that counts: what earlier runs of that
    day left open is closed as superseded, so a day run again is not listed twice."""
    earlier = select(ReconciliationRun.id).where(
        ReconciliationRun.gateway == run.gateway,
        ReconciliationRun.bill_date == run.bill_date,
        ReconciliationRun.id < run.id,  # started before it (ids sort by creation)
    )
    session.execute(
        update(Discrepancy)
        .where(Discrepancy.run_id.in_(earlier), Discrepancy.resolved_at.is_(None))
        .values(
            resolved_at=now,
            resolved_by="system",
            resolution_note=f"superseded by reconciliation {run.id}",
        )
    )


def _discrepancy(run_id: str, finding: _Finding, now: datetime) -> Discrepancy:
    line = finding.line
    return Discrepancy(
        id=new_id("rcd"),
        run_id=run_id,
        kind=finding.kind,
        line_kind=finding.line_kind,
        out_trade_no=line.out_trade_no if line else finding.payment_id,
        gateway_trade_no=line.gateway_trade_no if line else None,
        payment_id=finding.payment_id,
        refund_id=finding.refund_id,
        currency=finding.currency,
        gateway_amount_minor=line.amount.amount_minor if line else None,
        knowpay_amount_minor=finding.knowpay_amount_minor,
        detail=finding.detail[:500],
        created_at=now,
    )


# Matching -----------------------------------------------------------------------------------


_LOOKUP_CHUNK = 500
"""Ids per IN (…) lookup: a day's bill may hold more than SQLite takes in one statement."""


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + _LOOKUP_CHUNK] for i in range(0, len(ids), _LOOKUP_CHUNK)]


def _match(session: Session, source: BillSource, bill: Bill) -> _Result:
    result = _Result()
    named = sorted({line.out_trade_no for line in bill.lines})
    payments = {
        p.id: p
        for chunk in _chunks(named)
        for p in session.scalars(select(Payment).where(Payment.id.in_(chunk))).all()
        if p.channel in source.channels
    }
    start, end = source.window(bill.bill_date)
    _match_payments(session, source, bill, payments, (start, end), result)
    refunded = _refunded_payments(session, source, bill, payments)
    _match_refunds(session, source, bill, refunded, (start, end), result)
    return result


def _refunded_payments(
    session: Session, source: BillSource, bill: Bill, payments: dict[str, Payment]
) -> dict[str, Payment]:
    """The payment each refund line names, by the line's `out_trade_no`: knowpay's payment
    id, or else (a gateway whose file names the refund by the refund's own number, as
    UnionPay's does) the payment whose gateway trade number the line carries."""
    lines = [line for line in bill.lines if line.kind == "refund"]
    found = {
        line.out_trade_no: payments[line.out_trade_no]
        for line in lines
        if line.out_trade_no in payments
    }
    by_trade_no = sorted(
        {
            line.gateway_trade_no
            for line in lines
            if line.out_trade_no not in found and line.gateway_trade_no
        }
    )
    known = {
        p.gateway_trade_no: p
        for chunk in _chunks(by_trade_no)
        for p in session.scalars(
            select(Payment).where(
                Payment.channel.in_(list(source.channels)), Payment.gateway_trade_no.in_(chunk)
            )
        ).all()
    }
    for line in lines:
        if line.out_trade_no not in found and line.gateway_trade_no in known:
            found[line.out_trade_no] = known[line.gateway_trade_no]
    return found


def _match_payments(
    session: Session,
    source: BillSource,
    bill: Bill,
    payments: dict[str, Payment],
    window: tuple[datetime, datetime],
    result: _Result,
) -> None:
    on_the_bill: set[str] = set()
    for line in (line for line in bill.lines if line.kind == "payment"):
        result.add(line.amount.currency, "gateway_payments", line.amount.amount_minor)
        payment = payments.get(line.out_trade_no)
        if payment is not None and payment.id in on_the_bill:
            result.count(_paid_twice(line, payment))
            continue
        if payment is not None:
            on_the_bill.add(payment.id)
        result.count(_payment_finding(line, payment))
    for payment in _captured_within(session, source.channels, window):
        result.add(payment.currency, "knowpay_payments", payment.amount_minor)
        if payment.id not in on_the_bill:
            result.findings.append(
                _Finding(
                    "missing_at_gateway",
                    "payment",
                    payment.currency,
                    f"knowpay captured payment {payment.id}; the bill has no such payment",
                    payment_id=payment.id,
                    knowpay_amount_minor=payment.amount_minor,
                )
            )


def _paid_twice(line: BillLine, payment: Payment) -> _Finding:
    """A second payment line for one payment: another trade at the gateway carried its
    number (a second PaymentIntent or order with the same metadata) and holds money that
    knowpay's books do not show."""
    return _Finding(
        "duplicate_at_gateway",
        "payment",
        line.amount.currency,
        f"the gateway was paid again for payment {payment.id} (trade "
        f"{line.gateway_trade_no}); knowpay recorded one capture",
        line=line,
        payment_id=payment.id,
        knowpay_amount_minor=payment.amount_minor,
    )


def _payment_finding(line: BillLine, payment: Payment | None) -> _Finding | None:
    currency = line.amount.currency
    if payment is None:
        return _Finding(
            "missing_in_knowpay",
            "payment",
            currency,
            f"the gateway was paid for {line.out_trade_no}, which knowpay does not know",
            line=line,
        )
    if payment.status != PaymentStatus.SUCCEEDED:
        return _Finding(
            "status_mismatch",
            "payment",
            currency,
            f"the gateway was paid; knowpay has payment {payment.id} {payment.status}",
            line=line,
            payment_id=payment.id,
            knowpay_amount_minor=payment.amount_minor,
        )
    if (payment.amount_minor, payment.currency) != (line.amount.amount_minor, currency):
        return _Finding(
            "amount_mismatch",
            "payment",
            currency,
            f"the gateway took {line.amount}; knowpay captured "
            f"{payment.amount_minor} {payment.currency}",
            line=line,
            payment_id=payment.id,
            knowpay_amount_minor=payment.amount_minor,
        )
    return None


def _captured_within(
    session: Session, channels: Iterable[str], window: tuple[datetime, datetime]
) -> list[Payment]:
    """knowpay's captures on these channels that the gateway dates within the window (its
    own time of payment when it gave one, else when knowpay recorded the capture)."""
    paid_at = func.coalesce(Payment.gateway_paid_at, Payment.succeeded_at)
    return list(
        session.scalars(
            select(Payment)
            .where(
                Payment.channel.in_(list(channels)),
                Payment.status == PaymentStatus.SUCCEEDED,
                paid_at >= window[0],
                paid_at < window[1],
            )
            .order_by(Payment.id)
        ).all()
    )


def _match_refunds(
    session: Session,
    source: BillSource,
    bill: Bill,
    payments: dict[str, Payment],
    window: tuple[datetime, datetime],
    result: _Result,
) -> None:
    lines = [line for line in bill.lines if line.kind == "refund"]
    refunds_of: dict[str, list[Refund]] = defaultdict(list)
    for chunk in _chunks(sorted({p.id for p in payments.values()})):
        for refund in session.scalars(
            select(Refund)
            .where(Refund.payment_id.in_(chunk), Refund.resolution.is_(None))
            .order_by(Refund.id)
        ).all():
            refunds_of[refund.payment_id].append(refund)
    matched_ids: set[str] = set()
    for line in lines:
        result.add(line.amount.currency, "gateway_refunds", line.amount.amount_minor)
        result.count(_refund_finding(line, payments, refunds_of, matched_ids, window))
    for refund in _refunded_within(session, source.channels, window):
        result.add(refund.currency, "knowpay_refunds", refund.amount_minor)
        if refund.id not in matched_ids:
            result.findings.append(
                _Finding(
                    "missing_at_gateway",
                    "refund",
                    refund.currency,
                    f"knowpay's refund {refund.id} succeeded; the bill has no such refund",
                    payment_id=refund.payment_id,
                    refund_id=refund.id,
                    knowpay_amount_minor=refund.amount_minor,
                )
            )


def _refund_finding(
    line: BillLine,
    payments: dict[str, Payment],
    refunds_of: dict[str, list[Refund]],
    matched_ids: set[str],
    window: tuple[datetime, datetime],
) -> _Finding | None:
    """The bill names the trade, not the refund: a refund of that payment for the same
    amount, not matched yet, is the one. One that succeeded within the bill's day first,
    then one still processing, then one that succeeded on another day (the nearest to the
    line's time): an earlier day's refund of the same amount must not take today's line."""
    currency = line.amount.currency
    payment = payments.get(line.out_trade_no)
    candidates = [
        r
        for r in refunds_of.get(payment.id if payment else line.out_trade_no, [])
        if r.id not in matched_ids
        and (r.amount_minor, r.currency) == (line.amount.amount_minor, currency)
        and r.status in (RefundStatus.SUCCEEDED, RefundStatus.PROCESSING)
    ]
    candidates.sort(key=lambda r: _refund_preference(r, line, window))
    if not candidates:
        return _Finding(
            "missing_in_knowpay",
            "refund",
            currency,
            f"the gateway refunded {line.amount} of {line.out_trade_no}; knowpay has no "
            "such refund",
            line=line,
            payment_id=payment.id if payment else None,
        )
    refund = candidates[0]
    matched_ids.add(refund.id)
    if refund.status != RefundStatus.SUCCEEDED:
        return _Finding(
            "status_mismatch",
            "refund",
            currency,
            f"the gateway refunded; knowpay has refund {refund.id} {refund.status}",
            line=line,
            payment_id=refund.payment_id,
            refund_id=refund.id,
            knowpay_amount_minor=refund.amount_minor,
        )
    return None


def _refund_preference(
    refund: Refund, line: BillLine, window: tuple[datetime, datetime]
) -> tuple[int, float]:
    succeeded_at = refund.succeeded_at
    if refund.status != RefundStatus.SUCCEEDED or succeeded_at is None:
        return (1, 0.0)
    distance = abs((succeeded_at - line.occurred_at).total_seconds())
    return (0 if window[0] <= succeeded_at < window[1] else 2, distance)


def _refunded_within(
    session: Session, channels: Iterable[str], window: tuple[datetime, datetime]
) -> list[Refund]:
    """knowpay's refunds through these channels that succeeded within the window (not those
    settled by hand outside the gateway)."""
    return list(
        session.scalars(
            select(Refund)
            .where(
                Refund.channel.in_(list(channels)),
                Refund.status == RefundStatus.SUCCEEDED,
                Refund.resolution.is_(None),
                Refund.succeeded_at >= window[0],
                Refund.succeeded_at < window[1],
            )
            .order_by(Refund.id)
        ).all()
    )


# Reading and resolving ----------------------------------------------------------------------


def get_run(session: Session, run_id: str) -> ReconciliationRun:
    run = session.get(ReconciliationRun, run_id)
    if run is None:
        raise RunNotFound(f"No such reconciliation run: {run_id}")
    return run


def list_runs(
    session: Session,
    params: PageParams,
    *,
    gateway: str | None = None,
    bill_date: date | None = None,
) -> tuple[list[ReconciliationRun], bool]:
    """Runs, newest first (of one gateway, of one day, when given)."""
    statement = select(ReconciliationRun)
    if gateway is not None:
        statement = statement.where(ReconciliationRun.gateway == gateway)
    if bill_date is not None:
        statement = statement.where(ReconciliationRun.bill_date == bill_date)
    return page_of(session, statement, ReconciliationRun.id, params)


def discrepancies_of(session: Session, run_id: str) -> list[Discrepancy]:
    return list(
        session.scalars(
            select(Discrepancy).where(Discrepancy.run_id == run_id).order_by(Discrepancy.id)
        ).all()
    )


def list_discrepancies(
    session: Session, params: PageParams, *, unresolved: bool | None = None
) -> tuple[list[Discrepancy], bool]:
    """Discrepancies of every run, newest first; only open (or only resolved) ones."""
    statement = select(Discrepancy)
    if unresolved is True:
        statement = statement.where(Discrepancy.resolved_at.is_(None))
    elif unresolved is False:
        statement = statement.where(Discrepancy.resolved_at.is_not(None))
    return page_of(session, statement, Discrepancy.id, params)


def resolve(
    session: Session, discrepancy_id: str, staff: str, note: str, now: datetime
) -> Discrepancy:
    """Finance explains a discrepancy (a refund made at the gateway's console, a bill line
    of another merchant, a capture booked the next day…): it is closed, with who and why."""
    found = session.scalars(
        select(Discrepancy).where(Discrepancy.id == discrepancy_id).with_for_update()
    ).first()
    if found is None:
        raise DiscrepancyNotFound(f"No such discrepancy: {discrepancy_id}")
    if found.resolved_at is not None:
        raise DiscrepancyResolved(f"Discrepancy {discrepancy_id} was resolved already.")
    found.resolved_at, found.resolved_by, found.resolution_note = now, staff, note
    audit.record(
        session,
        action="reconciliation.discrepancy_resolved",
        object_type="reconciliation_discrepancy",
        object_id=found.id,
        before={"resolved": False},
        after={"resolved": True, "note": note},
        now=now,
    )
    return found


def scheduled_tries(session: Session, gateway: str, bill_date: date) -> list[ReconciliationRun]:
    """The scheduled job's runs of one gateway's day, oldest first."""
    prefix = f"{gateway}:{bill_date.isoformat()}:"
    return list(
        session.scalars(
            select(ReconciliationRun)
            .where(ReconciliationRun.schedule_key.startswith(prefix))
            .order_by(ReconciliationRun.started_at, ReconciliationRun.id)
        ).all()
    )
