"""Risk control: assess every payment attempt against the enabled rules, store the decision,
hold `review`s for staff, and manage rules and the blacklist. Never commits.

The payments domain calls `assess` inside its own transaction before an attempt goes to the
gateway, `record_outcome` when an attempt succeeds or fails, and `payer_account_blacklisted`
on the capture path. Releasing a held attempt needs payments, which sits above risk: it
fills the `ReviewReleaser` protocol at start-up (`app.state.risk_releaser`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowpay.audit import service as audit
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams
from knowpay.risk import repository, rules
from knowpay.risk.errors import (
    BlacklistEntryExists,
    BlacklistEntryNotFound,
    InvalidRuleParams,
    ReviewNotFound,
    RiskDecisionNotFound,
    RiskRuleNotFound,
)
from knowpay.risk.models import RiskBlacklistEntry, RiskDecision, RiskRule
from knowpay.risk.schemas import (
    AnyRuleCreate,
    BlacklistCreate,
    BlacklistKind,
    RuleKind,
    RuleUpdate,
    canonical_ip,
    dump_params,
    parse_params,
)
from knowpay.risk.states import (
    AttemptOutcome,
    Decision,
    ReviewOutcome,
    ReviewStatus,
    next_review_status,
    outcomes_allowing,
)

logger = logging.getLogger("knowpay.risk")

SYSTEM_REVIEWER = "system"
"""`reviewed_by` of a review nobody decided (closed with its attempt)."""

ReviewFilter = Literal["open", "released", "rejected", "closed"]


@dataclass(frozen=True, slots=True)
class RiskAttempt:
    """One payment attempt as risk control sees it, before it goes to the gateway."""

    payment_id: str
    order_id: str
    app_id: str
    user_id: str
    amount_minor: int
    currency: str
    channel: str
    client_ip: str | None
    device_id: str | None


class ReviewReleaser(Protocol):
    """Filled by the payments domain at start-up (`app.state.risk_releaser`): what happens to
    the held attempt once staff decide. Runs in the request's transaction, after the review's
    status changed; if it raises, the decision is rolled back and the review stays open."""

    def release(self, session: Session, decision: RiskDecision) -> None:
        """Send the held attempt to its gateway."""
        ...

    def reject(self, session: Session, decision: RiskDecision) -> None:
        """Close the held attempt without contacting the gateway."""
        ...


def _client_ip(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    return canonical_ip(raw) or raw.strip()[:64]


def assess(session: Session, attempt: RiskAttempt, now: datetime) -> RiskDecision:
    """Decide allow, review or deny for one attempt and store the decision with every matching
    rule as a reason: deny if a deny rule matches, else review if a review rule matches, else
    allow. Logs the attempt for later velocity, streak and history rules. Never commits."""
    enabled = rules.parsed(repository.enabled_rules(session))
    facts = rules.Facts(
        session=session,
        user_id=attempt.user_id,
        client_ip=_client_ip(attempt.client_ip),
        device_id=(attempt.device_id or "").strip()[:128] or None,
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        now=now,
    )
    repository.lock_subjects(session, rules.velocity_lock_keys(enabled, facts))
    matches = rules.evaluate(enabled, facts)
    actions = {match.rule.action for match in matches}
    decision = (
        Decision.DENY
        if Decision.DENY.value in actions
        else Decision.REVIEW
        if Decision.REVIEW.value in actions
        else Decision.ALLOW
    )
    repository.add_attempt(
        session,
        {
            "id": new_id("ratt"),
            "payment_id": attempt.payment_id,
            "user_id": attempt.user_id,
            "app_id": attempt.app_id,
            "client_ip": facts.client_ip,
            "device_id": facts.device_id,
            "amount_minor": attempt.amount_minor,
            "currency": attempt.currency,
            "outcome": (
                AttemptOutcome.DENIED if decision is Decision.DENY else AttemptOutcome.PENDING
            ).value,
            "created_at": now,
            "outcome_at": now if decision is Decision.DENY else None,
        },
    )
    reasons = [
        {"rule_id": m.rule.id, "kind": m.rule.kind, "action": m.rule.action, "detail": m.detail}
        for m in matches
    ]
    row = RiskDecision(
        id=new_id("risk"),
        payment_id=attempt.payment_id,
        order_id=attempt.order_id,
        user_id=attempt.user_id,
        app_id=attempt.app_id,
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        channel=attempt.channel,
        client_ip=facts.client_ip,
        device_id=facts.device_id,
        decision=decision.value,
        reasons_json=json.dumps(reasons, ensure_ascii=False),
        created_at=now,
        review_status=ReviewStatus.OPEN.value if decision is Decision.REVIEW else None,
    )
    repository.add(session, row)
    if decision is not Decision.ALLOW:
        logger.info(
            "risk %s for payment %s: %s",
            decision.value,
            attempt.payment_id,
            ", ".join(r["rule_id"] for r in reasons),
        )
    return row


def record_outcome(session: Session, payment_id: str, succeeded: bool, now: datetime) -> bool:
    """Note that an assessed attempt succeeded or failed (the streak and amount-history rules
    count it). A success is final and a late success overrides a failure; attempts risk
    control stopped keep their outcome. False when nothing changed (unknown attempt too)."""
    outcome = AttemptOutcome.SUCCEEDED if succeeded else AttemptOutcome.FAILED
    return repository.set_outcome(
        session, payment_id, outcome.value, [o.value for o in outcomes_allowing(outcome)], now
    )


def payer_account_blacklisted(session: Session, account: str) -> bool:
    """Whether the paying account the gateway reported is on the blacklist (a plain lookup,
    whatever rules are enabled: the capture path decides what to do about it)."""
    value = account.strip()
    if not value:
        return False
    found = repository.find_blacklist_entry(session, BlacklistKind.PAYER_ACCOUNT.value, value)
    return found is not None


# Decisions and reviews


def get_decision(session: Session, decision_id: str) -> RiskDecision:
    decision = repository.get_decision(session, decision_id)
    if decision is None:
        raise RiskDecisionNotFound(f"No risk decision {decision_id}.")
    return decision


def decision_for_payment(session: Session, payment_id: str) -> RiskDecision | None:
    """The decision stored for one payment attempt, if it was assessed."""
    return repository.decision_for_payment(session, payment_id)


def list_decisions(
    session: Session,
    params: PageParams,
    *,
    decision: str | None = None,
    payment_id: str | None = None,
    user_id: str | None = None,
) -> tuple[list[RiskDecision], bool]:
    """Decisions newest first, optionally of one kind, payment or buyer."""
    return repository.list_decisions(
        session, params, decision=decision, payment_id=payment_id, user_id=user_id
    )


def list_reviews(
    session: Session, params: PageParams, status: ReviewFilter | None
) -> tuple[list[RiskDecision], bool]:
    """Review decisions newest first; only those in `status` when given."""
    return repository.list_decisions(session, params, reviews_only=True, review_status=status)


def get_review(session: Session, decision_id: str) -> RiskDecision:
    decision = repository.get_decision(session, decision_id)
    if decision is None or decision.review_status is None:
        raise ReviewNotFound(f"No risk review {decision_id}.")
    return decision


def close_moot_review(session: Session, decision_id: str, now: datetime) -> RiskDecision | None:
    """An open review whose attempt closed before anyone decided (the caller saw it closed)
    leaves the queue as `closed`; None when it is no longer open, or staff are deciding it
    right now (their decision stands)."""
    decision = session.scalars(
        select(RiskDecision)
        .where(RiskDecision.id == decision_id, RiskDecision.review_status == ReviewStatus.OPEN)
        .with_for_update(skip_locked=True)
    ).first()
    if decision is None:
        return None
    decision.review_status = ReviewStatus.CLOSED.value
    decision.reviewed_by = SYSTEM_REVIEWER
    decision.reviewed_at = now
    session.flush()
    _record_review(session, decision, ReviewStatus.OPEN.value, now)
    return decision


def _record_review(session: Session, decision: RiskDecision, before: str, now: datetime) -> None:
    """The audit record of a review that left `before` for its status now."""
    after = decision.review_status
    audit.record(
        session,
        action=f"risk_review.{after}",
        object_type="risk_decision",
        object_id=decision.id,
        before={"review_status": before},
        after={"review_status": after, "payment_id": decision.payment_id},
        now=now,
    )


def decide_review(
    session: Session,
    decision_id: str,
    staff_id: str,
    outcome: Literal["release", "reject"] | ReviewOutcome,
    note: str | None,
    now: datetime,
    releaser: ReviewReleaser | None = None,
) -> RiskDecision:
    """Staff release or reject a held attempt (409 when it was already decided). A rejected
    attempt is logged as stopped by risk control. With a `releaser` (the payments domain),
    the held attempt is then opened at its gateway or failed, in the same transaction."""
    decision = repository.get_decision(session, decision_id, for_update=True)
    if decision is None or decision.review_status is None:
        raise ReviewNotFound(f"No risk review {decision_id}.")
    before = decision.review_status
    after = next_review_status(ReviewStatus(before), ReviewOutcome(outcome))
    decision.review_status = after.value
    decision.reviewed_by = staff_id
    decision.reviewed_at = now
    decision.review_note = note
    if after is ReviewStatus.REJECTED:
        denied = AttemptOutcome.DENIED
        allowed_from = [o.value for o in outcomes_allowing(denied)]
        repository.set_outcome(session, decision.payment_id, denied.value, allowed_from, now)
    session.flush()
    _record_review(session, decision, before, now)
    if releaser is not None:
        if after is ReviewStatus.REJECTED:
            releaser.reject(session, decision)
        else:
            releaser.release(session, decision)
    return decision


# Rules


def _rule_snapshot(rule: RiskRule) -> dict[str, Any]:
    return {
        "kind": rule.kind,
        "action": rule.action,
        "enabled": rule.enabled,
        "priority": rule.priority,
        "params": rule.params,
    }


def create_rule(session: Session, body: AnyRuleCreate, now: datetime) -> RiskRule:
    """Add a rule; it applies from the next assessment when enabled."""
    rule = RiskRule(
        id=new_id("rrule"),
        kind=body.kind.value,
        params_json=json.dumps(dump_params(body.params), sort_keys=True),
        action=body.action.value,
        enabled=body.enabled,
        priority=body.priority,
        description=body.description,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, rule)
    audit.record(
        session,
        action="risk_rule.created",
        object_type="risk_rule",
        object_id=rule.id,
        after=_rule_snapshot(rule),
        now=now,
    )
    return rule


def get_rule(session: Session, rule_id: str) -> RiskRule:
    rule = repository.get_rule(session, rule_id)
    if rule is None:
        raise RiskRuleNotFound(f"No risk rule {rule_id}.")
    return rule


def list_rules(
    session: Session, params: PageParams, *, kind: str | None = None, enabled: bool | None = None
) -> tuple[list[RiskRule], bool]:
    """Rules newest first."""
    return repository.list_rules(session, params, kind=kind, enabled=enabled)


def _validated_params(kind: RuleKind, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        return dump_params(parse_params(kind, raw))
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(["params", *(str(p) for p in error["loc"])]),
                "in": "body",
                "message": error["msg"],
                "type": error["type"],
            }
            for error in exc.errors()
        ]
        fields = ", ".join(sorted({e["field"] for e in errors}))
        raise InvalidRuleParams(
            f"Invalid params for a {kind.value} rule: {fields}.", errors=errors
        ) from None


def update_rule(session: Session, rule_id: str, patch: RuleUpdate, now: datetime) -> RiskRule:
    """Change a rule's enabled flag, action, params, priority or description; params are
    validated against the rule's kind (422, nothing changed, when they do not fit)."""
    rule = repository.get_rule(session, rule_id, for_update=True)
    if rule is None:
        raise RiskRuleNotFound(f"No risk rule {rule_id}.")
    before = _rule_snapshot(rule)
    if patch.params is not None:
        params = _validated_params(RuleKind(rule.kind), patch.params)
        rule.params_json = json.dumps(params, sort_keys=True)
    if patch.enabled is not None:
        rule.enabled = patch.enabled
    if patch.action is not None:
        rule.action = patch.action.value
    if patch.priority is not None:
        rule.priority = patch.priority
    if "description" in patch.model_fields_set:
        rule.description = patch.description
    rule.updated_at = now
    session.flush()
    audit.record(
        session,
        action="risk_rule.updated",
        object_type="risk_rule",
        object_id=rule.id,
        before=before,
        after=_rule_snapshot(rule),
        now=now,
    )
    return rule


def disable_rule(session: Session, rule_id: str, now: datetime) -> RiskRule:
    """Switch a rule off (rules are kept, so past decisions keep naming them)."""
    return update_rule(session, rule_id, RuleUpdate(enabled=False), now)


# Blacklist


def add_to_blacklist(
    session: Session, body: BlacklistCreate, created_by: str, now: datetime
) -> RiskBlacklistEntry:
    """Blacklist a buyer, IP, device or payer account (409 when it already is)."""
    if repository.find_blacklist_entry(session, body.kind.value, body.value) is not None:
        raise BlacklistEntryExists(f"{body.kind.value} {body.value} is already blacklisted.")
    entry = RiskBlacklistEntry(
        id=new_id("rblk"),
        kind=body.kind.value,
        value=body.value,
        reason=body.reason,
        created_by=created_by[:80],
        created_at=now,
    )
    try:
        with session.begin_nested():
            repository.add(session, entry)
    except IntegrityError:  # someone added the same value at the same moment
        raise BlacklistEntryExists(
            f"{body.kind.value} {body.value} is already blacklisted."
        ) from None
    audit.record(
        session,
        action="risk_blacklist.added",
        object_type="risk_blacklist_entry",
        object_id=entry.id,
        after={"kind": entry.kind, "value": entry.value, "reason": entry.reason},
        now=now,
    )
    return entry


def list_blacklist(
    session: Session,
    params: PageParams,
    *,
    kind: str | None = None,
    value: str | None = None,
) -> tuple[list[RiskBlacklistEntry], bool]:
    """Blacklist entries newest first."""
    if kind == BlacklistKind.IP.value and value is not None:
        value = canonical_ip(value) or value
    return repository.list_blacklist(session, params, kind=kind, value=value)


def get_blacklist_entry(session: Session, entry_id: str) -> RiskBlacklistEntry:
    entry = repository.get_blacklist_entry(session, entry_id)
    if entry is None:
        raise BlacklistEntryNotFound(f"No blacklist entry {entry_id}.")
    return entry


def remove_from_blacklist(session: Session, entry_id: str, now: datetime) -> None:
    """Take a value off the blacklist."""
    entry = get_blacklist_entry(session, entry_id)
    snapshot = {"kind": entry.kind, "value": entry.value, "reason": entry.reason}
    repository.delete_blacklist_entry(session, entry)
    audit.record(
        session,
        action="risk_blacklist.removed",
        object_type="risk_blacklist_entry",
        object_id=entry_id,
        before=snapshot,
        now=now,
    )
