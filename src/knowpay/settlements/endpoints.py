"""Routes of settlements: creators' monthly statements, their payouts, a creator's balance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from knowpay.accounts import service as accounts
from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, AppSettings, DbSession, SessionRoute
from knowpay.settlements import service
from knowpay.settlements.schemas import (
    CreatorBalance,
    SettlementLine,
    SettlementOut,
    SettlementPayout,
    SettlementRun,
)

router = APIRouter(route_class=SessionRoute, prefix="/v1", tags=["settlements"])

Finance = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN))]
Status = Annotated[str | None, Query(pattern="^(open|paid|superseded|nothing_due)$")]


@router.get("/settlements", response_model=Page[SettlementOut])
def list_settlements(
    caller: CurrentPrincipal,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    creator_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Status = None,
) -> Page[SettlementOut]:
    """Statements, newest first: a creator's own, an app's creators', staff all."""
    found, has_more = service.list_visible(
        session, caller, params, creator_id=creator_id, status=status
    )
    return Page[SettlementOut](data=[SettlementOut.of(s) for s in found], has_more=has_more)


@router.get("/settlements/{settlement_id}", response_model=SettlementOut)
def read_settlement(
    settlement_id: str, caller: CurrentPrincipal, session: DbSession, settings: AppSettings
) -> SettlementOut:
    """A statement with its month's lines."""
    settlement = service.get_visible(session, caller, settlement_id)
    lines = [
        SettlementLine(
            kind=line.kind,
            amount=-line.amount_minor,
            order_id=line.order_id,
            entry_id=line.entry_id,
            created_at=line.created_at,
        )
        for line in service.lines(session, settlement, settings.limits.timezone)
    ]
    return SettlementOut.of(settlement, lines)


@router.get(
    "/creators/{creator_id}/balance",
    response_model=CreatorBalance,
    responses=problem_responses(404),
)
def read_creator_balance(
    creator_id: str, caller: CurrentPrincipal, session: DbSession
) -> CreatorBalance:
    """What the platform owes a creator now (`me`: the calling creator)."""
    wanted = caller.id if creator_id == "me" else creator_id
    creator = accounts.get_visible_user(session, caller, wanted)
    return CreatorBalance(
        creator_id=creator.id,
        owed=[
            {"amount": m.amount_minor, "currency": m.currency}
            for m in service.owed(session, creator.id)
        ],
    )


@router.post(
    "/admin/settlements/run",
    response_model=list[SettlementOut],
    tags=["admin"],
    responses=problem_responses(422),  # period_not_over
)
def run_settlements(
    body: SettlementRun, caller: Finance, session: DbSession, clock: AppClock, settings: AppSettings
) -> list[SettlementOut]:
    """Settle a month that has ended (finance); returns its statements (made once)."""
    service.settle(session, body.first_day(), settings.limits.timezone, clock.now())
    return [SettlementOut.of(s) for s in service.statements_of(session, body.first_day())]


@router.post(
    "/admin/settlements/{settlement_id}/pay",
    response_model=SettlementOut,
    tags=["admin"],
    responses=problem_responses(409),  # settlement_not_payable
)
def pay_settlement(
    settlement_id: str,
    caller: Finance,
    session: DbSession,
    clock: AppClock,
    body: SettlementPayout | None = None,
) -> SettlementOut:
    """Record that an open statement was paid out (finance): its amount leaves the
    creator's balance in the ledger."""
    settlement = service.pay(
        session,
        settlement_id,
        caller.actor,
        (body or SettlementPayout()).reference,
        clock.now(),
    )
    return SettlementOut.of(settlement)
