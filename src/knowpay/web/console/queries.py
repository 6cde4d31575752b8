"""What the staff console reads: search across orders, payments and refunds, and an order's
full story. Read-only SQL over the domains' tables (the console is an entry point); every
change goes through the domains' services."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from knowpay.accounts.models import App, User
from knowpay.audit.models import AuditRecord
from knowpay.auth.principals import Principal, Role
from knowpay.gateway_notifications.models import InboundNotification
from knowpay.kit.clock import day_start
from knowpay.kit.masking import mask_email, mask_text
from knowpay.kit.outbox_models import OutboxEvent
from knowpay.ledger.models import JournalEntry, Posting
from knowpay.orders.models import Order
from knowpay.payments.models import Payment
from knowpay.refunds.models import Refund, RefundTimelineEntry
from knowpay.risk.models import RiskDecision

SEARCH_LIMIT = 50
RAW_BODY_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What staff typed: an id, email, out_trade_no or gateway number, and a date range
    [start, end) on creation time, in days of `timezone`."""

    q: str = ""
    start: date | None = None
    end: date | None = None
    timezone: str = "UTC"


@dataclass(slots=True)
class SearchResults:
    orders: list[Order] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    emails: dict[str, str] = field(default_factory=dict)
    """user id → email of the buyers in the results."""


def _in_range(statement: Select[Any], column: Any, query: SearchQuery) -> Select[Any]:
    if query.start is not None:
        statement = statement.where(column >= day_start(query.start, query.timezone))
    if query.end is not None:
        statement = statement.where(column < day_start(query.end, query.timezone))
    return statement


def _user_ids(session: Session, q: str) -> list[str]:
    rows = session.scalars(
        select(User.id).where(or_(User.id == q, User.email == q.lower())).limit(20)
    )
    return list(rows)


def search(session: Session, query: SearchQuery, viewer: Principal) -> SearchResults:
    """Orders, payments and refunds matching `q` (any of their ids, the buyer's id or email,
    out_trade_no, the gateway's trade or refund number) created in the date range; the
    newest first, at most SEARCH_LIMIT of each. Without `q`, the newest in the range."""
    q = query.q.strip()
    order_filter: Any = True
    payment_filter: Any = True
    refund_filter: Any = True
    if q:
        users = _user_ids(session, q)
        by_payment = select(Payment.order_id).where(
            or_(Payment.id == q, Payment.gateway_trade_no == q)
        )
        by_refund = select(Refund.order_id).where(
            or_(Refund.id == q, Refund.gateway_refund_no == q, Refund.out_refund_no == q)
        )
        order_filter = or_(
            Order.id == q,
            Order.out_trade_no == q,
            Order.user_id.in_(users),
            Order.id.in_(by_payment),
            Order.id.in_(by_refund),
        )
        payment_filter = or_(
            Payment.id == q,
            Payment.order_id == q,
            Payment.gateway_trade_no == q,
            Payment.user_id.in_(users),
            Payment.order_id.in_(select(Order.id).where(Order.out_trade_no == q)),
            Payment.id.in_(
                select(Refund.payment_id).where(
                    or_(Refund.id == q, Refund.gateway_refund_no == q, Refund.out_refund_no == q)
                )
            ),
        )
        refund_filter = or_(
            Refund.id == q,
            Refund.order_id == q,
            Refund.payment_id == q,
            Refund.gateway_refund_no == q,
            Refund.out_refund_no == q,
            Refund.user_id.in_(users),
            Refund.order_id.in_(select(Order.id).where(Order.out_trade_no == q)),
            Refund.payment_id.in_(select(Payment.id).where(Payment.gateway_trade_no == q)),
        )
    orders = session.scalars(
        _in_range(select(Order).where(order_filter), Order.created_at, query)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(SEARCH_LIMIT)
    ).all()
    payments = session.scalars(
        _in_range(select(Payment).where(payment_filter), Payment.created_at, query)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(SEARCH_LIMIT)
    ).all()
    refunds = session.scalars(
        _in_range(select(Refund).where(refund_filter), Refund.created_at, query)
        .order_by(Refund.created_at.desc(), Refund.id.desc())
        .limit(SEARCH_LIMIT)
    ).all()
    results = SearchResults(list(orders), list(payments), list(refunds))
    user_ids = {o.user_id for o in orders} | {p.user_id for p in payments}
    user_ids |= {r.user_id for r in refunds}
    results.emails = emails_of(session, user_ids, viewer)
    return results


def emails_of(session: Session, user_ids: set[str], viewer: Principal) -> dict[str, str]:
    """user id → email, as `viewer` may read it."""
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all()
    return {str(user_id): shown_email(str(email), viewer) for user_id, email in rows}


def shown_email(email: str, viewer: Principal) -> str:
    """A buyer's email in full for admins; masked for finance and support, as the API shows
    it them (docs/security.md)."""
    return email if viewer.role is Role.ADMIN else mask_email(email)


# An order's story ---------------------------------------------------------------------------

_SECRET_FIELDS = re.compile(
    r"""(?P<key>["']?(?:sign|signature|sign_type|paySign|serial_no|signed_data|
    authorization|access_token|key|secret)["']?\s*[=:]\s*)(?P<value>"[^"]*"|[^&\s,}]+)""",
    re.IGNORECASE | re.VERBOSE,
)


def mask_raw_body(body: bytes) -> str:
    """A notification's raw body for staff eyes: signatures and secrets blanked, emails,
    phone and card numbers masked, cut at RAW_BODY_LIMIT characters."""
    text = body.decode("utf-8", "replace")
    text = _SECRET_FIELDS.sub(lambda m: m.group("key") + "***", text)
    text = mask_text(text)
    if len(text) > RAW_BODY_LIMIT:
        text = text[:RAW_BODY_LIMIT] + " …"
    return text


@dataclass(frozen=True, slots=True)
class NotificationView:
    id: str
    gateway: str
    external_id: str
    payment_id: str | None
    verified: bool
    outcome: str
    reason: str | None
    received_at: datetime
    masked_body: str


@dataclass(frozen=True, slots=True)
class EntryView:
    entry: JournalEntry
    postings: list[Posting]


@dataclass(frozen=True, slots=True)
class EventView:
    id: str
    seq: int
    type: str
    created_at: datetime
    dispatched_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass(slots=True)
class OrderStory:
    order: Order
    buyer_email: str | None
    app_name: str | None
    payments: list[Payment]
    refunds: list[Refund]
    timelines: dict[str, list[RefundTimelineEntry]]
    risk: list[RiskDecision]
    notifications: list[NotificationView]
    entries: list[EntryView]
    events: list[EventView]
    audit: list[AuditRecord]


def order_story(session: Session, order_id: str, viewer: Principal) -> OrderStory | None:
    """Everything knowpay knows about one order, each part oldest first; None when unknown."""
    order = session.get(Order, order_id)
    if order is None:
        return None
    buyer = session.get(User, order.user_id)
    app = session.get(App, order.app_id)
    payments = list(
        session.scalars(
            select(Payment).where(Payment.order_id == order.id).order_by(Payment.created_at)
        ).all()
    )
    payment_ids = [p.id for p in payments]
    refunds = list(
        session.scalars(
            select(Refund).where(Refund.order_id == order.id).order_by(Refund.created_at)
        ).all()
    )
    refund_ids = [r.id for r in refunds]
    timelines: dict[str, list[RefundTimelineEntry]] = {r: [] for r in refund_ids}
    if refund_ids:
        for step in session.scalars(
            select(RefundTimelineEntry)
            .where(RefundTimelineEntry.refund_id.in_(refund_ids))
            .order_by(RefundTimelineEntry.id)
        ):
            timelines[step.refund_id].append(step)
    risk = list(
        session.scalars(
            select(RiskDecision).where(RiskDecision.order_id == order.id).order_by(RiskDecision.id)
        ).all()
    )
    notifications = [
        NotificationView(
            id=n.id,
            gateway=n.gateway,
            external_id=n.external_id,
            payment_id=n.payment_id,
            verified=n.verified,
            outcome=n.outcome,
            reason=n.reason,
            received_at=n.received_at,
            masked_body=mask_raw_body(n.body),
        )
        for n in session.scalars(
            select(InboundNotification)
            .where(InboundNotification.payment_id.in_(payment_ids or [""]))
            .order_by(InboundNotification.received_at)
        )
    ]
    journal = list(
        session.scalars(
            select(JournalEntry)
            .where(JournalEntry.order_id == order.id)
            .order_by(JournalEntry.created_at, JournalEntry.id)
        ).all()
    )
    postings: dict[str, list[Posting]] = {e.id: [] for e in journal}
    if journal:
        for posting in session.scalars(
            select(Posting).where(Posting.entry_id.in_(list(postings))).order_by(Posting.id)
        ):
            postings[posting.entry_id].append(posting)
    events = [
        EventView(
            id=e.id,
            seq=e.seq,
            type=e.type,
            created_at=e.created_at,
            dispatched_at=e.dispatched_at,
            attempts=e.attempts,
            last_error=e.last_error,
        )
        for e in session.scalars(
            select(OutboxEvent).where(OutboxEvent.stream_key == order.id).order_by(OutboxEvent.seq)
        )
    ]
    objects = [("order", [order.id]), ("payment", payment_ids), ("refund", refund_ids)]
    objects.append(("risk_decision", [d.id for d in risk]))
    audit = list(
        session.scalars(
            select(AuditRecord)
            .where(
                or_(
                    *(
                        and_(AuditRecord.object_type == kind, AuditRecord.object_id.in_(ids))
                        for kind, ids in objects
                        if ids
                    )
                )
            )
            .order_by(AuditRecord.created_at, AuditRecord.id)
        ).all()
    )
    return OrderStory(
        order=order,
        buyer_email=shown_email(buyer.email, viewer) if buyer else None,
        app_name=app.name if app else None,
        payments=payments,
        refunds=refunds,
        timelines=timelines,
        risk=risk,
        notifications=notifications,
        entries=[EntryView(e, postings[e.id]) for e in journal],
        events=events,
        audit=audit,
    )


def compact_json(raw: str | None) -> str:
    """An audit record's before/after as one short line."""
    if not raw:
        return ""
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False, sort_keys=True)
    except ValueError:
        return raw


def payment_statuses(session: Session, payment_ids: set[str]) -> dict[str, str]:
    """payment id → status (the risk queue: a held attempt may have closed meanwhile)."""
    if not payment_ids:
        return {}
    rows = session.execute(select(Payment.id, Payment.status).where(Payment.id.in_(payment_ids)))
    return {str(payment_id): str(status) for payment_id, status in rows}


def pending_refunds(session: Session, limit: int = 100) -> list[Refund]:
    """Refunds waiting for finance, oldest first (the queue's order)."""
    return list(
        session.scalars(
            select(Refund)
            .where(Refund.status == "pending_approval")
            .order_by(Refund.created_at, Refund.id)
            .limit(limit)
        ).all()
    )
