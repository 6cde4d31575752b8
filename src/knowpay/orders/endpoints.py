"""Routes of orders (closing and paying live with payments, which own those flows)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, AppSettings, DbSession, SessionRoute
from knowpay.orders import service
from knowpay.orders.models import OrderKind
from knowpay.orders.schemas import OrderCreate, OrderOut, TopUpCreate
from knowpay.orders.states import OrderStatus

router = APIRouter(route_class=SessionRoute, prefix="/v1/orders", tags=["orders"])

AppCaller = Annotated[Principal, Depends(require_roles(Role.APP))]
TopUpCaller = Annotated[Principal, Depends(require_roles(Role.APP, Role.BUYER, Role.CREATOR))]

top_ups_router = APIRouter(route_class=SessionRoute, prefix="/v1/wallet", tags=["wallet"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses={
        200: {"model": OrderOut, "description": "The existing order with this out_trade_no"},
        **problem_responses(404),  # product_not_found: an item names no product of the app
    },
)
def create_order(
    body: OrderCreate,
    caller: AppCaller,
    session: DbSession,
    clock: AppClock,
    settings: AppSettings,
    response: Response,
) -> OrderOut:
    """Create an order for a buyer; the amount comes from the catalog's published prices.
    Repeating an `out_trade_no` with the same content returns that order (200)."""
    order, created = service.create_order(
        session,
        caller,
        body,
        clock.now(),
        creator_share_bps=settings.revenue_share.creator_share_bps,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return OrderOut.of(order)


@router.get("", response_model=Page[OrderOut])
def list_orders(
    caller: CurrentPrincipal,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    user_id: Annotated[str | None, Query(max_length=40)] = None,
    status_filter: Annotated[OrderStatus | None, Query(alias="status")] = None,
    kind: Annotated[OrderKind | None, Query(description="purchase or top_up")] = None,
) -> Page[OrderOut]:
    """Orders the caller may see, newest first."""
    found, has_more = service.list_orders(
        session,
        caller,
        params,
        user_id=user_id,
        status=status_filter.value if status_filter else None,
        kind=kind.value if kind else None,
    )
    return Page[OrderOut](data=[OrderOut.of(o) for o in found], has_more=has_more)


@router.get("/{order_id}", response_model=OrderOut)
def read_order(order_id: str, caller: CurrentPrincipal, session: DbSession) -> OrderOut:
    """One order."""
    return OrderOut.of(service.get_visible(session, caller, order_id))


@top_ups_router.post(
    "/top-ups",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses={
        200: {"model": OrderOut, "description": "The existing order with this out_trade_no"},
        **problem_responses(409),  # out_trade_no_conflict
    },
)
def create_top_up(
    body: TopUpCreate,
    caller: TopUpCaller,
    session: DbSession,
    clock: AppClock,
    settings: AppSettings,
    response: Response,
) -> OrderOut:
    """Top up a buyer's knowledge-coin wallet: an order of `kind` `top_up` for the amount,
    paid through `POST /v1/orders/{id}/payments` with any gateway channel (not `wallet`).
    When it is paid the balance grows by the amount. Top-ups are not refunded on request
    (`top_up_not_refundable`); a duplicate payment of one is, automatically."""
    order, created = service.create_top_up(session, caller, body, settings.wallet, clock.now())
    if not created:
        response.status_code = status.HTTP_200_OK
    return OrderOut.of(order)
