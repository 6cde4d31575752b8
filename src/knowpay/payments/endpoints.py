"""Routes of payments: paying and closing orders, reading and syncing attempts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.channels.errors import ChannelError, ChannelUnavailable
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, DbSession
from knowpay.orders import service as orders
from knowpay.orders.errors import OrderAlreadyPaid
from knowpay.orders.schemas import OrderOut
from knowpay.orders.states import OrderStatus
from knowpay.payments import repository, service
from knowpay.payments.errors import ChannelUnavailableError, GatewayError
from knowpay.payments.schemas import PaymentCreate, PaymentOut

router = APIRouter(prefix="/v1", tags=["payments"])

AppCaller = Annotated[Principal, Depends(require_roles(Role.APP))]
Payer = Annotated[Principal, Depends(require_roles(Role.APP, Role.BUYER, Role.CREATOR))]
AppOrStaff = Annotated[
    Principal, Depends(require_roles(Role.APP, Role.ADMIN, Role.FINANCE, Role.SUPPORT))
]


def _context(request: Request) -> service.PaymentsContext:
    context: service.PaymentsContext = request.app.state.payments_context
    return context


Context = Annotated[service.PaymentsContext, Depends(_context)]


@router.post(
    "/orders/{order_id}/payments", status_code=status.HTTP_201_CREATED, response_model=PaymentOut
)
def create_payment(
    order_id: str,
    body: PaymentCreate,
    caller: Payer,
    session: DbSession,
    clock: AppClock,
    ctx: Context,
) -> PaymentOut:
    """Start paying an order through a channel; `action` says what the payer does next.
    A declined attempt is returned with status `failed`; the buyer may try again."""
    payment = service.start_payment(session, ctx, caller, order_id, body, clock.now())
    order = orders.lock(session, payment.order_id)
    subject, expires_at = order.subject, order.expires_at
    session.commit()  # the attempt exists before the gateway hears of it
    try:
        result = service.call_gateway_create(ctx, payment, subject, expires_at)
    except ChannelError as exc:
        service.fail_unreachable(session, payment.id, str(exc), clock.now())
        session.commit()
        if not isinstance(exc, ChannelUnavailable):
            raise GatewayError(
                f"The {payment.channel} gateway refused: {exc}", payment_id=payment.id
            ) from exc
        raise ChannelUnavailableError(
            f"The {payment.channel} gateway cannot be reached; try again or choose "
            "another channel.",
            payment_id=payment.id,
        ) from exc
    return PaymentOut.of(service.apply_create_result(session, payment.id, result, clock.now()))


@router.get("/orders/{order_id}/payments", response_model=Page[PaymentOut])
def list_order_payments(
    order_id: str, caller: CurrentPrincipal, session: DbSession
) -> Page[PaymentOut]:
    """Every attempt to pay an order, oldest first."""
    order = orders.get_visible(session, caller, order_id)
    return Page[PaymentOut](
        data=[PaymentOut.of(p) for p in repository.for_order(session, order.id)], has_more=False
    )


@router.post("/orders/{order_id}/close", response_model=OrderOut)
def close_order(
    order_id: str, caller: AppCaller, session: DbSession, clock: AppClock, ctx: Context
) -> OrderOut:
    """Close an unpaid order and its pending attempts at their gateways."""
    order = orders.get_visible(session, caller, order_id, for_update=True)
    order = service.close_order(session, ctx, order, clock.now())
    if order.status != OrderStatus.CLOSED:
        session.commit()  # the capture found while closing is recorded all the same
        raise OrderAlreadyPaid(f"Order {order.id} was paid before it could be closed.")
    return OrderOut.of(order)


@router.get("/payments/{payment_id}", response_model=PaymentOut)
def read_payment(payment_id: str, caller: CurrentPrincipal, session: DbSession) -> PaymentOut:
    """One payment attempt."""
    return PaymentOut.of(service.get_visible(session, caller, payment_id))


@router.post("/payments/{payment_id}/sync", response_model=PaymentOut)
def sync_payment(
    payment_id: str, caller: AppOrStaff, session: DbSession, clock: AppClock, ctx: Context
) -> PaymentOut:
    """Ask the gateway now (active query) and record what it says."""
    payment = service.get_visible(session, caller, payment_id)
    session.commit()  # no transaction stays open while the gateway answers
    result = service.query_gateway(ctx, payment)
    return PaymentOut.of(service.apply_query_result(session, payment_id, result, clock.now()))


Staff = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.FINANCE, Role.SUPPORT))]


@router.get("/admin/duplicate-payments", response_model=Page[PaymentOut], tags=["admin"])
def list_duplicate_payments(
    caller: Staff, session: DbSession, params: Annotated[PageParams, Depends(page_params)]
) -> Page[PaymentOut]:
    """Payments captured for an order that was already paid or closed (refunded automatically)."""
    found, has_more = service.list_duplicates(session, params)
    return Page[PaymentOut](data=[PaymentOut.of(p) for p in found], has_more=has_more)
