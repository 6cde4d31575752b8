"""/v1/admin/risk: rules, the blacklist, decisions and the review queue (staff only).

Reading is open to every staff role; rules and the blacklist are changed by admin and
finance; held payments are released or rejected by admin, finance and support."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status

from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import STAFF_ROLES, Principal, Role
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.risk import service
from knowpay.risk.errors import ReviewReleaserMissing
from knowpay.risk.schemas import (
    AnyRuleCreate,
    BlacklistCreate,
    BlacklistEntryOut,
    BlacklistKind,
    ReviewDecisionIn,
    RiskDecisionOut,
    RuleKind,
    RuleOut,
    RuleUpdate,
)
from knowpay.risk.states import Decision, ReviewOutcome, ReviewStatus

router = APIRouter(route_class=SessionRoute, prefix="/v1/admin/risk", tags=["admin", "risk"])

Staff = Annotated[Principal, Depends(require_roles(*STAFF_ROLES))]
RuleManager = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.FINANCE))]
Reviewer = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.FINANCE, Role.SUPPORT))]
Paging = Annotated[PageParams, Depends(page_params)]


async def _releaser(request: Request) -> service.ReviewReleaser:
    releaser: service.ReviewReleaser | None = getattr(request.app.state, "risk_releaser", None)
    if releaser is None:
        raise ReviewReleaserMissing("No review releaser is configured; nothing was changed.")
    return releaser


Releaser = Annotated[service.ReviewReleaser, Depends(_releaser)]


# Rules


@router.post("/rules", status_code=status.HTTP_201_CREATED, response_model=RuleOut)
def create_rule(
    body: Annotated[AnyRuleCreate, Body(discriminator="kind")],
    caller: RuleManager,
    session: DbSession,
    clock: AppClock,
) -> RuleOut:
    """Add a rule; `kind` decides its `params`. Applies from the next payment attempt."""
    return RuleOut.of(service.create_rule(session, body, clock.now()))


@router.get("/rules", response_model=Page[RuleOut])
def list_rules(
    caller: Staff,
    session: DbSession,
    params: Paging,
    kind: RuleKind | None = None,
    enabled: bool | None = None,
) -> Page[RuleOut]:
    """Rules newest first."""
    found, has_more = service.list_rules(
        session, params, kind=kind.value if kind else None, enabled=enabled
    )
    return Page[RuleOut](data=[RuleOut.of(r) for r in found], has_more=has_more)


@router.get("/rules/{rule_id}", response_model=RuleOut)
def read_rule(rule_id: str, caller: Staff, session: DbSession) -> RuleOut:
    """One rule."""
    return RuleOut.of(service.get_rule(session, rule_id))


@router.patch("/rules/{rule_id}", response_model=RuleOut)
def update_rule(
    rule_id: str, body: RuleUpdate, caller: RuleManager, session: DbSession, clock: AppClock
) -> RuleOut:
    """Enable or disable a rule, or change its action, params, priority or description."""
    return RuleOut.of(service.update_rule(session, rule_id, body, clock.now()))


@router.delete("/rules/{rule_id}", response_model=RuleOut)
def disable_rule(rule_id: str, caller: RuleManager, session: DbSession, clock: AppClock) -> RuleOut:
    """Disable a rule (it is kept: past decisions name it)."""
    return RuleOut.of(service.disable_rule(session, rule_id, clock.now()))


# Blacklist


@router.post("/blacklist", status_code=status.HTTP_201_CREATED, response_model=BlacklistEntryOut)
def add_to_blacklist(
    body: BlacklistCreate, caller: RuleManager, session: DbSession, clock: AppClock
) -> BlacklistEntryOut:
    """Blacklist a buyer, IP, device or payer account; 409 when it already is."""
    return BlacklistEntryOut.of(service.add_to_blacklist(session, body, caller.id, clock.now()))


@router.get("/blacklist", response_model=Page[BlacklistEntryOut])
def list_blacklist(
    caller: Staff,
    session: DbSession,
    params: Paging,
    kind: BlacklistKind | None = None,
    value: Annotated[str | None, Query(max_length=255)] = None,
) -> Page[BlacklistEntryOut]:
    """Blacklist entries newest first."""
    found, has_more = service.list_blacklist(
        session, params, kind=kind.value if kind else None, value=value
    )
    return Page[BlacklistEntryOut](data=[BlacklistEntryOut.of(e) for e in found], has_more=has_more)


@router.get("/blacklist/{entry_id}", response_model=BlacklistEntryOut)
def read_blacklist_entry(entry_id: str, caller: Staff, session: DbSession) -> BlacklistEntryOut:
    """One blacklist entry."""
    return BlacklistEntryOut.of(service.get_blacklist_entry(session, entry_id))


@router.delete("/blacklist/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_from_blacklist(
    entry_id: str, caller: RuleManager, session: DbSession, clock: AppClock
) -> Response:
    """Take a value off the blacklist."""
    service.remove_from_blacklist(session, entry_id, clock.now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Decisions and reviews


@router.get("/decisions", response_model=Page[RiskDecisionOut])
def list_decisions(
    caller: Staff,
    session: DbSession,
    params: Paging,
    decision: Decision | None = None,
    payment_id: Annotated[str | None, Query(max_length=40)] = None,
    user_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[RiskDecisionOut]:
    """Every assessed attempt's decision newest first, by outcome, payment or buyer."""
    found, has_more = service.list_decisions(
        session,
        params,
        decision=decision.value if decision else None,
        payment_id=payment_id,
        user_id=user_id,
    )
    return Page[RiskDecisionOut](data=[RiskDecisionOut.of(d) for d in found], has_more=has_more)


@router.get("/decisions/{decision_id}", response_model=RiskDecisionOut)
def read_decision(decision_id: str, caller: Staff, session: DbSession) -> RiskDecisionOut:
    """One decision with its reasons."""
    return RiskDecisionOut.of(service.get_decision(session, decision_id))


@router.get("/reviews", response_model=Page[RiskDecisionOut])
def list_reviews(
    caller: Staff,
    session: DbSession,
    params: Paging,
    status_filter: Annotated[ReviewStatus | None, Query(alias="status")] = None,
) -> Page[RiskDecisionOut]:
    """Held attempts newest first; `status=open` is the queue waiting for staff."""
    found, has_more = service.list_reviews(
        session, params, status_filter.value if status_filter else None
    )
    return Page[RiskDecisionOut](data=[RiskDecisionOut.of(d) for d in found], has_more=has_more)


@router.get("/reviews/{decision_id}", response_model=RiskDecisionOut)
def read_review(decision_id: str, caller: Staff, session: DbSession) -> RiskDecisionOut:
    """One held attempt with the reasons it was held."""
    return RiskDecisionOut.of(service.get_review(session, decision_id))


@router.post("/reviews/{decision_id}/release", response_model=RiskDecisionOut)
def release_review(
    decision_id: str,
    caller: Reviewer,
    session: DbSession,
    clock: AppClock,
    releaser: Releaser,
    body: ReviewDecisionIn | None = None,
) -> RiskDecisionOut:
    """Let a held attempt through: it goes to its gateway. 409 when already decided."""
    decision = service.decide_review(
        session,
        decision_id,
        caller.id,
        ReviewOutcome.RELEASE,
        body.note if body else None,
        clock.now(),
        releaser,
    )
    return RiskDecisionOut.of(decision)


@router.post("/reviews/{decision_id}/reject", response_model=RiskDecisionOut)
def reject_review(
    decision_id: str,
    caller: Reviewer,
    session: DbSession,
    clock: AppClock,
    releaser: Releaser,
    body: ReviewDecisionIn | None = None,
) -> RiskDecisionOut:
    """Refuse a held attempt: it never reaches the gateway. 409 when already decided."""
    decision = service.decide_review(
        session,
        decision_id,
        caller.id,
        ReviewOutcome.REJECT,
        body.note if body else None,
        clock.now(),
        releaser,
    )
    return RiskDecisionOut.of(decision)
