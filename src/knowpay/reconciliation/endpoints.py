"""Routes of reconciliation, for finance and admins: runs, their discrepancies, resolving."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status

from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.schemas import Day
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.reconciliation import service, tasks
from knowpay.reconciliation.schemas import DiscrepancyOut, Resolution, RunCreate, RunOut
from knowpay.refunds.service import actor_of

router = APIRouter(route_class=SessionRoute, prefix="/v1/admin", tags=["admin"])

Finance = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN))]


def _context(request: Request) -> tasks.ReconciliationContext:
    state = request.app.state
    return tasks.ReconciliationContext(state.database, state.channel_registry, state.clock)


Context = Annotated[tasks.ReconciliationContext, Depends(_context)]


@router.post("/reconciliations", status_code=status.HTTP_201_CREATED, response_model=RunOut)
def create_run(body: RunCreate, caller: Finance, session: DbSession, ctx: Context) -> RunOut:
    """Fetch one gateway's bill of one day and match it against the books now. A bill the
    gateway could not give leaves a `failed` run with the reason; a day whose bill is not
    complete yet is 422 `bill_not_ready`; a gateway without bills here 422."""
    session.commit()  # no transaction stays open while the gateway answers
    run_id = tasks.reconcile(ctx, body.gateway, body.bill_date, actor_of(caller))
    run = service.get_run(session, run_id)
    return RunOut.of(run, service.discrepancies_of(session, run_id))


@router.get("/reconciliations", response_model=Page[RunOut])
def list_runs(
    caller: Finance,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    gateway: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
    bill_date: Day | None = None,
) -> Page[RunOut]:
    """Runs newest first, of one gateway or one day when asked."""
    runs, has_more = service.list_runs(session, params, gateway=gateway, bill_date=bill_date)
    return Page[RunOut](data=[RunOut.of(r) for r in runs], has_more=has_more)


@router.get("/reconciliations/{run_id}", response_model=RunOut)
def read_run(run_id: str, caller: Finance, session: DbSession) -> RunOut:
    """One run with every discrepancy it found."""
    run = service.get_run(session, run_id)
    return RunOut.of(run, service.discrepancies_of(session, run.id))


@router.get("/reconciliation-discrepancies", response_model=Page[DiscrepancyOut])
def list_discrepancies(
    caller: Finance,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    discrepancy_status: Annotated[Literal["open", "resolved"] | None, Query(alias="status")] = None,
) -> Page[DiscrepancyOut]:
    """Discrepancies of every run, newest first: `status=open` is finance's work list."""
    unresolved = None if discrepancy_status is None else discrepancy_status == "open"
    found, has_more = service.list_discrepancies(session, params, unresolved=unresolved)
    return Page[DiscrepancyOut](data=[DiscrepancyOut.of(d) for d in found], has_more=has_more)


@router.post(
    "/reconciliation-discrepancies/{discrepancy_id}/resolve", response_model=DiscrepancyOut
)
def resolve(
    discrepancy_id: str, body: Resolution, caller: Finance, session: DbSession, clock: AppClock
) -> DiscrepancyOut:
    """Close a discrepancy with what explains it (audited; 409 when resolved already)."""
    found = service.resolve(session, discrepancy_id, actor_of(caller), body.note, clock.now())
    return DiscrepancyOut.of(found)
