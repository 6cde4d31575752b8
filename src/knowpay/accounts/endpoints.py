"""Routes of the accounts domain: users, login, payment password, apps (admin)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from knowpay.accounts import service
from knowpay.accounts.models import User
from knowpay.accounts.schemas import (
    AppCreate,
    AppOut,
    AppWithKeyOut,
    PaymentPasswordSet,
    PaymentPasswordStatus,
    PaymentPasswordVerify,
    TokenOut,
    TokenRequest,
    UserCreate,
    UserOut,
)
from knowpay.auth.dependencies import CurrentPrincipal, require_roles
from knowpay.auth.principals import PERSON_ROLES, Principal, Role
from knowpay.auth.tokens import TokenService
from knowpay.kit.errors import Forbidden
from knowpay.kit.openapi import problem_responses
from knowpay.kit.pagination import Page, PageParams, page_params
from knowpay.kit.ratelimit import client_ip, enforce, limiter_of
from knowpay.kit.web import AppClock, AppSettings, DbSession, Hasher, SessionRoute

router = APIRouter(route_class=SessionRoute, prefix="/v1", tags=["accounts"])

AppCaller = Annotated[Principal, Depends(require_roles(Role.APP))]
AdminCaller = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
AppOrStaff = Annotated[
    Principal, Depends(require_roles(Role.APP, Role.ADMIN, Role.FINANCE, Role.SUPPORT))
]


def _person(principal: CurrentPrincipal) -> Principal:
    if principal.role not in PERSON_ROLES:
        raise Forbidden("This is for a logged-in person, not an app key.")
    return principal


PersonCaller = Annotated[Principal, Depends(_person)]
PayerCaller = Annotated[Principal, Depends(require_roles(Role.BUYER, Role.CREATOR))]
"""Who has a payment password: the people who pay (API.md: buyers), not staff."""


def _user_out(user: User, caller: Principal) -> UserOut:
    """Staff other than admins see other people's email and phone masked."""
    masked = caller.is_staff and caller.role is not Role.ADMIN and user.id != caller.id
    return UserOut.of(user, masked=masked)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(
    body: UserCreate, caller: AppCaller, session: DbSession, clock: AppClock, hasher: Hasher
) -> UserOut:
    """Register a buyer (or a creator) for the calling app."""
    user = service.register_user(
        session,
        hasher,
        email=body.email,
        password=body.password,
        role=Role(body.role),
        now=clock.now(),
        app_id=caller.id,
        phone=body.phone,
        locale=body.locale,
    )
    return UserOut.of(user)


@router.get("/users", response_model=Page[UserOut])
def list_users(
    caller: AppOrStaff, session: DbSession, params: Annotated[PageParams, Depends(page_params)]
) -> Page[UserOut]:
    """The app's own users (staff: everyone), newest first."""
    users, has_more = service.list_users(
        session, params, app_id=None if caller.is_staff else caller.id
    )
    return Page[UserOut](data=[_user_out(u, caller) for u in users], has_more=has_more)


@router.get("/users/me", response_model=UserOut)
def read_me(caller: PersonCaller, session: DbSession) -> UserOut:
    """The logged-in person."""
    return UserOut.of(service.get_user(session, caller.id))


@router.get("/users/{user_id}", response_model=UserOut)
def read_user(user_id: str, caller: CurrentPrincipal, session: DbSession) -> UserOut:
    """A user the caller may see: an app its own, a person themself, staff anyone."""
    return _user_out(service.get_visible_user(session, caller, user_id), caller)


async def _token_request(request: Request) -> TokenRequest:
    """Accept the OAuth2 password form or the same fields as JSON."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if content_type == "application/x-www-form-urlencoded":
        parsed = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        data = {key: values[-1] for key, values in parsed.items()}
    else:
        try:
            data = json.loads(raw or b"null")
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}]
            ) from None
    try:
        return TokenRequest.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def _login_rate_limits(
    request: Request, body: Annotated[TokenRequest, Depends(_token_request)]
) -> None:
    """Count the try per client IP and per account (a keyed hash of the email) before any
    password is checked; 429 `rate_limited` when either is over its limit."""
    limiter = limiter_of(request)
    account = limiter.digest(service.normalize_email(body.username))
    enforce(
        request,
        [(limiter.login_per_ip, client_ip(request)), (limiter.login_per_account, account)],
        "login attempts",
    )


def _form_schema() -> dict[str, Any]:
    """TokenRequest as a form carries it: a form has no null, it leaves grant_type out."""
    schema = TokenRequest.model_json_schema()
    schema["properties"]["grant_type"] = {
        "type": "string",
        "const": "password",
        "title": "Grant Type",
    }
    return schema


_TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TokenRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": _form_schema()},
        },
    }
}


@router.post(
    "/auth/token",
    response_model=TokenOut,
    tags=["auth"],
    openapi_extra=_TOKEN_BODY,
    responses=problem_responses(401),  # wrong email or password
)
def issue_token(
    _limits: Annotated[None, Depends(_login_rate_limits)],
    body: Annotated[TokenRequest, Depends(_token_request)],
    request: Request,
    session: DbSession,
    clock: AppClock,
    hasher: Hasher,
) -> TokenOut:
    """Log in with email and password; returns a short-lived bearer token."""
    principal = service.authenticate(session, hasher, email=body.username, password=body.password)
    tokens: TokenService = request.app.state.token_service
    issued = tokens.issue(principal, clock.now())
    return TokenOut(access_token=issued.access_token, expires_in=issued.expires_in)


def _lockout_policy(settings: AppSettings) -> service.LockoutPolicy:
    return service.lockout_policy(settings)


Policy = Annotated[service.LockoutPolicy, Depends(_lockout_policy)]


def _payment_password_rate_limit(request: Request, caller: PersonCaller) -> None:
    """Count the try before the password is looked at: a refused try (429) never reaches
    the lockout counter."""
    limiter = limiter_of(request)
    enforce(request, [(limiter.payment_password, caller.id)], "payment password tries")


PaymentPasswordTry = Annotated[None, Depends(_payment_password_rate_limit)]


@router.put(
    "/users/me/payment-password",
    response_model=PaymentPasswordStatus,
    responses=problem_responses(423),  # too many wrong tries of the current one
)
def set_payment_password(
    body: PaymentPasswordSet,
    caller: PayerCaller,
    request: Request,
    session: DbSession,
    clock: AppClock,
    hasher: Hasher,
    policy: Policy,
) -> PaymentPasswordStatus:
    """Set the 6-digit payment password, or change it by giving the current one."""
    if body.current_password is not None:  # a try of the current one: counted first
        _payment_password_rate_limit(request, caller)
    check = service.set_payment_password(
        session,
        hasher,
        user_id=caller.id,
        new_password=body.new_password,
        current_password=body.current_password,
        now=clock.now(),
        policy=policy,
    )
    if not check.verified:
        session.commit()  # a wrong try counts even though the answer is an error
        service.refuse_failed_check(check)
    return PaymentPasswordStatus(is_set=True, verified=True)


@router.post(
    "/users/me/payment-password/verify",
    response_model=PaymentPasswordStatus,
    responses=problem_responses(423),  # too many wrong tries
)
def verify_payment_password(
    _limit: PaymentPasswordTry,
    body: PaymentPasswordVerify,
    caller: PayerCaller,
    session: DbSession,
    clock: AppClock,
    hasher: Hasher,
    policy: Policy,
) -> PaymentPasswordStatus:
    """Check the payment password (5 wrong tries lock it for 30 minutes)."""
    check = service.check_payment_password(
        session, hasher, user_id=caller.id, password=body.password, now=clock.now(), policy=policy
    )
    if not check.verified:
        session.commit()
        service.refuse_failed_check(check)
    return PaymentPasswordStatus(is_set=True, verified=True)


def _app_out(app: Any) -> AppOut:
    return AppOut(id=app.id, name=app.name, created_at=app.created_at, disabled_at=app.disabled_at)


@router.get("/admin/apps", response_model=Page[AppOut], tags=["admin"])
def list_apps(caller: AdminCaller, session: DbSession) -> Page[AppOut]:
    """Every platform app (admin)."""
    return Page[AppOut](data=[_app_out(a) for a in service.list_apps(session)], has_more=False)


@router.post(
    "/admin/apps", status_code=status.HTTP_201_CREATED, response_model=AppWithKeyOut, tags=["admin"]
)
def create_app(
    body: AppCreate, caller: AdminCaller, session: DbSession, clock: AppClock
) -> AppWithKeyOut:
    """Create an app and its first API key, shown only in this response (admin)."""
    created = service.create_app(session, name=body.name, now=clock.now())
    return AppWithKeyOut(
        **_app_out(created.app).model_dump(), api_key=created.api_key, api_key_id=created.api_key_id
    )
