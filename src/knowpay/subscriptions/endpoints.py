"""Routes of subscriptions: subscribe, read, cancel and resume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from knowpay.accounts import service as accounts
from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import Principal, Role
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.ratelimit import enforce, limiter_of
from knowpay.kit.web import AppClock, AppSettings, DbSession, Hasher, SessionRoute
from knowpay.orders import service as orders
from knowpay.subscriptions import service
from knowpay.subscriptions.schemas import SubscriptionCancel, SubscriptionCreate, SubscriptionOut

router = APIRouter(route_class=SessionRoute, prefix="/v1", tags=["subscriptions"])

Subscriber = Annotated[Principal, Depends(require_roles(Role.APP, Role.BUYER, Role.CREATOR))]
Changer = Annotated[
    Principal,
    Depends(require_roles(Role.APP, Role.BUYER, Role.CREATOR, Role.ADMIN, Role.SUPPORT)),
]
Status = Annotated[str | None, Query(pattern="^(active|past_due|canceled)$")]


def subscriptions_context(request: Request) -> service.SubscriptionsContext:
    context: service.SubscriptionsContext = request.app.state.subscriptions_context
    return context


Context = Annotated[service.SubscriptionsContext, Depends(subscriptions_context)]


@router.post(
    "/subscriptions",
    response_model=SubscriptionOut,
    status_code=201,
    responses=problem_responses(402, 403, 404, 409, 422, 423),
)
def create_subscription(
    body: SubscriptionCreate,
    caller: Subscriber,
    request: Request,
    session: DbSession,
    clock: AppClock,
    settings: AppSettings,
    hasher: Hasher,
    ctx: Context,
) -> SubscriptionOut:
    """Subscribe a buyer to a membership renewed from their wallet (the payment password
    authorises the renewals; the first period, unless already held, is paid at once)."""
    buyer = orders.buyer_named_by(session, caller, body.user_id)
    enforce(request, [(limiter_of(request).payment_password, buyer.id)], "payment password tries")
    check = accounts.check_payment_password(
        session,
        hasher,
        user_id=buyer.id,
        password=body.payment_password,
        now=clock.now(),
        policy=accounts.lockout_policy(settings),
    )
    session.commit()  # the try counts whatever follows, as for a wallet payment
    if not check.verified:
        accounts.refuse_failed_check(check)
    return SubscriptionOut.of(service.subscribe(session, ctx, buyer, body, clock.now()))


@router.get("/subscriptions", response_model=Page[SubscriptionOut])
def list_subscriptions(
    caller: CurrentPrincipal,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    user_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Status = None,
) -> Page[SubscriptionOut]:
    """Subscriptions, newest first: a buyer's own, an app's buyers', staff all."""
    found, has_more = service.list_visible(session, caller, params, user_id=user_id, status=status)
    return Page[SubscriptionOut](data=[SubscriptionOut.of(s) for s in found], has_more=has_more)


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    responses=problem_responses(404),
)
def read_subscription(
    subscription_id: str, caller: CurrentPrincipal, session: DbSession
) -> SubscriptionOut:
    return SubscriptionOut.of(service.get_visible(session, caller, subscription_id))


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=SubscriptionOut,
    responses=problem_responses(404, 409),
)
def cancel_subscription(
    subscription_id: str,
    caller: Changer,
    session: DbSession,
    clock: AppClock,
    ctx: Context,
    body: SubscriptionCancel | None = None,
) -> SubscriptionOut:
    """No more renewals: at the end of the period paid for (default), or now."""
    at_period_end = (body or SubscriptionCancel()).at_period_end
    subscription = service.cancel(session, ctx, caller, subscription_id, at_period_end, clock.now())
    return SubscriptionOut.of(subscription)


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=SubscriptionOut,
    responses=problem_responses(404, 409),
)
def resume_subscription(
    subscription_id: str, caller: Changer, session: DbSession, clock: AppClock, ctx: Context
) -> SubscriptionOut:
    """Keep renewing a subscription set to end with its period (before it has ended)."""
    return SubscriptionOut.of(service.resume(session, ctx, caller, subscription_id, clock.now()))
