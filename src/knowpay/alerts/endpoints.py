"""GET /v1/admin/alerts for staff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from knowpay.alerts import service
from knowpay.alerts.models import Alert
from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import STAFF_ROLES, Principal
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import DbSession, SessionRoute

router = APIRouter(route_class=SessionRoute, prefix="/v1/admin/alerts", tags=["admin"])

Staff = Annotated[Principal, Depends(require_roles(*STAFF_ROLES))]


class AlertOut(BaseModel):
    object: Literal["alert"] = "alert"
    id: str
    kind: str
    severity: str
    subject_id: str | None
    message: str
    created_at: datetime
    acknowledged_at: datetime | None

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        return cls(
            id=alert.id,
            kind=alert.kind,
            severity=alert.severity,
            subject_id=alert.subject_id,
            message=alert.message,
            created_at=alert.created_at,
            acknowledged_at=alert.acknowledged_at,
        )


@router.get("", response_model=Page[AlertOut])
def list_alerts(
    caller: Staff,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[AlertOut]:
    """Alerts newest first (staff)."""
    alerts, has_more = service.list_alerts(session, params, kind=kind)
    return Page[AlertOut](data=[AlertOut.of(a) for a in alerts], has_more=has_more)
