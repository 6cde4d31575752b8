"""GET /v1/admin/audit for staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from knowpay.audit import service
from knowpay.audit.schemas import AuditRecordOut
from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import STAFF_ROLES, Principal
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.schemas import TIME_RANGE, UtcTime
from knowpay.kit.web import DbSession, SessionRoute

router = APIRouter(route_class=SessionRoute, prefix="/v1/admin/audit", tags=["admin"])

Staff = Annotated[Principal, Depends(require_roles(*STAFF_ROLES))]
TIMES = f"RFC 3339 within {TIME_RANGE} (another is 422); without an offset, UTC"


@router.get("", response_model=Page[AuditRecordOut])
def list_audit_records(
    caller: Staff,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    actor: Annotated[str | None, Query(max_length=80, examples=["staff:usr_…"])] = None,
    action: Annotated[str | None, Query(max_length=64, examples=["refund.approved"])] = None,
    object_type: Annotated[str | None, Query(max_length=40, examples=["refund"])] = None,
    object_id: Annotated[str | None, Query(max_length=160)] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    created_gte: Annotated[UtcTime | None, Query(description=f"At or after; {TIMES}")] = None,
    created_lt: Annotated[UtcTime | None, Query(description=f"Before; {TIMES}")] = None,
) -> Page[AuditRecordOut]:
    """The audit log, newest first (staff). Every filter given must match."""
    filters = service.SearchFilters(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        request_id=request_id,
        created_gte=created_gte,
        created_lt=created_lt,
    )
    found, has_more = service.search(session, filters, params)
    return Page[AuditRecordOut](data=[AuditRecordOut.of(r) for r in found], has_more=has_more)
