"""Routes of the wallet: a buyer's balances and their history (top-ups are orders, made by
`POST /v1/wallet/top-ups` in the orders domain; paying from the wallet is a payment)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from knowpay.accounts import service as accounts
from knowpay.accounts.errors import UserNotFound
from knowpay.auth.dependencies import CurrentPrincipal
from knowpay.auth.principals import Principal, Role
from knowpay.kit.errors import InvalidRequest
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.schemas import CurrencyCode
from knowpay.kit.web import DbSession, SessionRoute
from knowpay.wallet import service
from knowpay.wallet.schemas import WalletOut, WalletTransactionOut

router = APIRouter(route_class=SessionRoute, prefix="/v1/wallet", tags=["wallet"])

UserQuery = Annotated[
    str | None,
    Query(max_length=40, description="The buyer (an app or staff must name one; a buyer: self)"),
]


def _owner(session: DbSession, caller: Principal, user_id: str | None) -> str:
    """Whose wallet: a buyer's own; an app's buyer or anyone's for staff, named by user_id."""
    if user_id is None:
        if caller.is_app or caller.is_staff:
            raise InvalidRequest("Give user_id.")
        return caller.id
    user = accounts.get_visible_user(session, caller, user_id)
    if user.role not in (Role.BUYER.value, Role.CREATOR.value):  # staff hold no wallet
        raise UserNotFound(f"No such user: {user_id}")
    return user.id


@router.get("", response_model=WalletOut, responses=problem_responses(400, 404))
def read_wallet(
    caller: CurrentPrincipal, session: DbSession, user_id: UserQuery = None
) -> WalletOut:
    """A buyer's knowledge-coin balances (a buyer: their own; an app: its buyers')."""
    owner = _owner(session, caller, user_id)
    return WalletOut.of(owner, service.balances(session, owner))


@router.get(
    "/transactions",
    response_model=Page[WalletTransactionOut],
    responses=problem_responses(400, 404),
)
def list_wallet_transactions(
    caller: CurrentPrincipal,
    session: DbSession,
    params: Annotated[PageParams, Depends(page_params)],
    user_id: UserQuery = None,
    currency: Annotated[CurrencyCode | None, Query()] = None,
) -> Page[WalletTransactionOut]:
    """Every change of a buyer's balance, newest first."""
    owner = _owner(session, caller, user_id)
    found, has_more = service.list_transactions(session, owner, params, currency)
    return Page[WalletTransactionOut](
        data=[WalletTransactionOut.of(t) for t in found], has_more=has_more
    )
