"""The console's reconciliation page: the gateways' bills matched against the books, and
finance resolving what did not match (as /v1/admin/reconciliations and …/resolve do)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from knowpay.auth.principals import Principal
from knowpay.kit.errors import KnowpayError
from knowpay.kit.pagination import PageParams
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.reconciliation import service as reconciliation
from knowpay.refunds.service import actor_of
from knowpay.web.console.common import RefundDecider, console_page
from knowpay.web.session import mark_page

router = APIRouter(
    route_class=SessionRoute,
    prefix="/admin",
    dependencies=[Depends(mark_page)],
    include_in_schema=False,
)

SEE_OTHER = 303


def _page(
    request: Request,
    staff: Principal,
    session: DbSession,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    runs, _ = reconciliation.list_runs(session, PageParams(limit=30))
    open_ones, more = reconciliation.list_discrepancies(
        session, PageParams(limit=100), unresolved=True
    )
    return console_page(
        request,
        "console/reconciliation.html",
        staff,
        status_code=status_code,
        error=error,
        section="reconciliation",
        runs=runs,
        discrepancies=open_ones,
        more_discrepancies=more,
    )


@router.get("/reconciliation", response_class=HTMLResponse)
def reconciliation_page(request: Request, staff: RefundDecider, session: DbSession) -> HTMLResponse:
    """The newest runs of each gateway's bill, and the discrepancies still open."""
    return _page(request, staff, session)


@router.post("/reconciliation/discrepancies/{discrepancy_id}/resolve", response_model=None)
def resolve_discrepancy(
    discrepancy_id: str,
    request: Request,
    staff: RefundDecider,
    session: DbSession,
    clock: AppClock,
    note: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse | HTMLResponse:
    """Finance closes a discrepancy with what explains it."""
    if not note.strip():
        return _page(request, staff, session, error="note_required", status_code=422)
    try:
        reconciliation.resolve(session, discrepancy_id, actor_of(staff), note.strip(), clock.now())
    except KnowpayError as exc:
        session.rollback()
        return _page(request, staff, session, error=exc.code, status_code=exc.status)
    return RedirectResponse(
        f"/admin/reconciliation?done=discrepancy_resolved&ref={discrepancy_id}",
        status_code=SEE_OTHER,
    )
