"""Routes of entitlements."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from knowpay.auth.dependencies import CurrentPrincipal
from knowpay.auth.scoping import can_see
from knowpay.entitlements import service
from knowpay.entitlements.schemas import EntitlementOut
from knowpay.kit.errors import Forbidden, InvalidRequest, NotFound
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, DbSession, SessionRoute

router = APIRouter(route_class=SessionRoute, prefix="/v1/entitlements", tags=["entitlements"])


@router.get(
    "",
    response_model=Page[EntitlementOut],
    responses=problem_responses(400),  # an app or staff caller must name the buyer
)
def list_entitlements(
    caller: CurrentPrincipal,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    user_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[EntitlementOut]:
    """What a buyer may access (a buyer: their own; an app: its buyers')."""
    if user_id is None:
        if caller.is_app or caller.is_staff:
            raise InvalidRequest("Give user_id.")
        user_id = caller.id
    found, has_more = service.list_for_user(session, user_id, params)
    visible = [e for e in found if can_see(caller, owner_app_id=e.app_id, owner_user_id=e.user_id)]
    return Page[EntitlementOut](
        data=[EntitlementOut.of(e) for e in visible], has_more=has_more and bool(visible)
    )


@router.post(
    "/{entitlement_id}/access",
    response_model=EntitlementOut,
    # 403 staff: only the app or the buyer says so; 409 revoked or ended: nothing to open
    responses=problem_responses(403, 409),
)
def record_access(
    entitlement_id: str, caller: CurrentPrincipal, session: DbSession, clock: AppClock
) -> EntitlementOut:
    """Note that the buyer opened the content (the first time counts for refund rules).
    Said by the app or by the buyer: staff looking at content is not the buyer using it.
    Content revoked or ended is not opened: 409 `entitlement_not_active`."""
    if caller.is_staff:
        raise Forbidden("Only the app or the buyer records that the buyer opened the content.")
    entitlement = service.get(session, entitlement_id)
    if entitlement is None or not can_see(
        caller, owner_app_id=entitlement.app_id, owner_user_id=entitlement.user_id
    ):
        raise NotFound(f"No such entitlement: {entitlement_id}")
    return EntitlementOut.of(service.record_access(entitlement, clock.now()))
