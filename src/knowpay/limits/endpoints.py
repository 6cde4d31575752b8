"""/v1/admin/limits: spending limits managed by staff, applied without a restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from knowpay.auth.dependencies import require_roles
from knowpay.auth.principals import STAFF_ROLES, Principal, Role
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.limits import service
from knowpay.limits.schemas import LevelUpdate, LimitCreate, LimitOut, LimitUpdate, UsageOut

router = APIRouter(route_class=SessionRoute, prefix="/v1/admin", tags=["admin"])

Staff = Annotated[Principal, Depends(require_roles(*STAFF_ROLES))]
Finance = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.FINANCE))]


@router.post("/limits", status_code=status.HTTP_201_CREATED, response_model=LimitOut)
def create_limit(
    body: LimitCreate, caller: Finance, session: DbSession, clock: AppClock
) -> LimitOut:
    """Add a limit (per transaction, day or month; for buyers by level, apps or channels)."""
    return LimitOut.of(service.create_limit(session, body, clock.now()))


@router.get("/limits", response_model=Page[LimitOut])
def list_limits(
    caller: Staff, session: DbSession, params: Annotated[PageParams, Depends(page_params)]
) -> Page[LimitOut]:
    """Every limit, newest first, a page at a time."""
    rows, has_more = service.page_of_limits(session, params)
    return Page[LimitOut](data=[LimitOut.of(x) for x in rows], has_more=has_more)


@router.get("/limits/{limit_id}", response_model=LimitOut)
def read_limit(limit_id: str, caller: Staff, session: DbSession) -> LimitOut:
    return LimitOut.of(service.get_limit(session, limit_id))


@router.patch("/limits/{limit_id}", response_model=LimitOut)
def update_limit(
    limit_id: str, body: LimitUpdate, caller: Finance, session: DbSession, clock: AppClock
) -> LimitOut:
    """Change the amount, the description, or switch a limit on or off."""
    return LimitOut.of(service.update_limit(session, limit_id, body, clock.now()))


@router.delete("/limits/{limit_id}", response_model=LimitOut)
def disable_limit(limit_id: str, caller: Finance, session: DbSession, clock: AppClock) -> LimitOut:
    """Switch a limit off (it is kept, with its usage, for the record)."""
    body = LimitUpdate(enabled=False)
    return LimitOut.of(service.update_limit(session, limit_id, body, clock.now()))


@router.get("/limits/{limit_id}/usage", response_model=Page[UsageOut])
def limit_usage(
    limit_id: str,
    caller: Staff,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
) -> Page[UsageOut]:
    """How much each subject used of the limit per period (one row each), newest first."""
    rows, has_more = service.usage_of(session, limit_id, params)
    return Page[UsageOut](data=[UsageOut.of(u) for u in rows], has_more=has_more)


@router.put("/users/{user_id}/level", response_model=LevelUpdate)
def set_level(user_id: str, body: LevelUpdate, caller: Finance, session: DbSession) -> LevelUpdate:
    """A buyer's level (e.g. `verified` after identity checks): it picks their buyer limits."""
    return LevelUpdate(level=service.set_buyer_level(session, user_id, body.level))
