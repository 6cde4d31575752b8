"""Routes of refunds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.kit.http import one_attempt
from knowpay.kit.idempotency import keep_interim_outcome
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.refunds import service
from knowpay.refunds.models import Refund
from knowpay.refunds.schemas import (
    ManualResolution,
    RefundCreate,
    RefundDecision,
    RefundOut,
    RefundRejection,
)
from knowpay.refunds.states import RefundStatus

router = APIRouter(route_class=SessionRoute, prefix="/v1/refunds", tags=["refunds"])

Requester = Annotated[Principal, Depends(require_roles(Role.APP, Role.BUYER, Role.CREATOR))]
Finance = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN))]


async def _context(request: Request) -> service.RefundsContext:
    context: service.RefundsContext = request.app.state.refunds_context
    return context


Context = Annotated[service.RefundsContext, Depends(_context)]


def _out(session: DbSession, refund: Refund) -> RefundOut:
    return RefundOut.of(refund, service.timeline(session, refund.id))


@dataclass(frozen=True, slots=True)
class Answering:
    """The API request a refund is sent for, and the status its answer carries."""

    request: Request
    status_code: int = status.HTTP_200_OK

    def keep_interim(self, session: DbSession, refund: Refund) -> None:
        def body() -> bytes:
            return _out(session, refund).model_dump_json(by_alias=True).encode()

        keep_interim_outcome(session, self.request.scope, self.status_code, body)


def send_now(
    session: DbSession,
    ctx: service.RefundsContext,
    refund: Refund,
    clock: AppClock,
    answering: Answering | None = None,
) -> Refund:
    """Send an approved refund to its gateway right away (the approval commits first); the
    worker's send job retries with the same refund number if the gateway cannot be reached.
    The staff console's approve form calls this too."""
    if refund.status != RefundStatus.PROCESSING or not refund.needs_gateway_call:
        return refund
    request, channel = service.refund_request(ctx, session, refund), refund.channel
    service.leave_to_the_request(refund, clock.now())
    if answering is not None:
        # Should this request die once the approval is committed, a retry with its
        # Idempotency-Key is told of the refund as it stands, not asked to make another.
        answering.keep_interim(session, refund)
    session.commit()  # the approval stands before the gateway hears of it
    with one_attempt():  # the caller waits; the send job tries again, with the same number
        result = service.send(ctx, request, channel)
    if result is None:  # unreachable: the send job retries with the same number
        return service.get(session, refund.id)
    return service.record_answer(session, ctx, refund.id, request, result, clock.now())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RefundOut,
    responses=problem_responses(404),  # the order_id names no order this caller may see
)
def create_refund(
    body: RefundCreate,
    caller: Requester,
    session: DbSession,
    clock: AppClock,
    ctx: Context,
    request: Request,
) -> RefundOut:
    """Ask for money back; small early requests go through at once, others wait for finance."""
    refund = service.request_refund(session, ctx, caller, body, clock.now())
    answering = Answering(request, status.HTTP_201_CREATED)
    return _out(session, send_now(session, ctx, refund, clock, answering))


@router.get("", response_model=Page[RefundOut])
def list_refunds(
    caller: CurrentPrincipal,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    order_id: Annotated[str | None, Query(max_length=40)] = None,
    status_filter: Annotated[RefundStatus | None, Query(alias="status")] = None,
) -> Page[RefundOut]:
    """Refunds the caller may see, newest first."""
    found, has_more = service.list_refunds(
        session,
        caller,
        params,
        order_id=order_id,
        status=status_filter.value if status_filter else None,
    )
    return Page[RefundOut](data=[_out(session, r) for r in found], has_more=has_more)


@router.get("/{refund_id}", response_model=RefundOut)
def read_refund(refund_id: str, caller: CurrentPrincipal, session: DbSession) -> RefundOut:
    """A refund with its timeline."""
    return _out(session, service.get_visible(session, caller, refund_id))


@router.post("/{refund_id}/approve", response_model=RefundOut)
def approve_refund(
    refund_id: str,
    caller: Finance,
    session: DbSession,
    clock: AppClock,
    ctx: Context,
    request: Request,
    body: RefundDecision | None = None,
) -> RefundOut:
    """Finance approves a waiting refund; it goes to the gateway."""
    refund = service.lock_with_order(session, refund_id)
    service.approve(
        session, refund, service.actor_of(caller), clock.now(), note=(body or RefundDecision()).note
    )
    return _out(session, send_now(session, ctx, refund, clock, Answering(request)))


@router.post("/{refund_id}/reject", response_model=RefundOut)
def reject_refund(
    refund_id: str, body: RefundRejection, caller: Finance, session: DbSession, clock: AppClock
) -> RefundOut:
    """Finance says no; the buyer sees the reason."""
    refund = service.reject(
        session,
        service.lock_with_order(session, refund_id),
        service.actor_of(caller),
        body.reason,
        clock.now(),
    )
    return _out(session, refund)


@router.post("/{refund_id}/retry", response_model=RefundOut)
def retry_refund(
    refund_id: str,
    caller: Finance,
    session: DbSession,
    clock: AppClock,
    ctx: Context,
    request: Request,
) -> RefundOut:
    """Send a failed refund again."""
    refund = service.retry(
        session, service.lock_with_order(session, refund_id), service.actor_of(caller), clock.now()
    )
    return _out(session, send_now(session, ctx, refund, clock, Answering(request)))


@router.post("/{refund_id}/resolve", response_model=RefundOut)
def resolve_refund(
    refund_id: str,
    body: ManualResolution,
    caller: Finance,
    session: DbSession,
    clock: AppClock,
    ctx: Context,
) -> RefundOut:
    """Settle a failed refund by hand: to the buyer's wallet, or paid offline."""
    refund = service.resolve_manually(
        session,
        service.lock_with_order(session, refund_id),
        service.actor_of(caller),
        body.method,
        body.note,
        clock.now(),
        ctx.policy,
        ctx.wallet,
    )
    return _out(session, refund)
