"""The console's forms: approve or reject refunds, release or reject held payments, add and
change limits. Each calls the domain services exactly as the API route does, with the same
roles; the CSRF middleware has checked the form's token before any of this runs."""

from __future__ import annotations

from decimal import Decimal, DecimalException
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from knowpay.kit.errors import KnowpayError
from knowpay.kit.money import MAX_AMOUNT_MINOR, MoneyError, currency_exponent
from knowpay.kit.web import AppClock, DbSession, SessionRoute
from knowpay.limits import service as limits
from knowpay.limits.schemas import LimitCreate, LimitUpdate
from knowpay.payments import service as payments
from knowpay.payments.states import PaymentStatus
from knowpay.refunds import service as refunds
from knowpay.refunds.endpoints import send_now
from knowpay.risk import service as risk
from knowpay.risk.states import ReviewOutcome
from knowpay.web.console.common import LimitEditor, RefundDecider, Reviewer, console_page
from knowpay.web.console.pages import limits_context, refund_queue_with_error, risk_queue_with_error
from knowpay.web.session import mark_page

router = APIRouter(
    route_class=SessionRoute,
    prefix="/admin",
    dependencies=[Depends(mark_page)],
    include_in_schema=False,
)

Note = Annotated[str, Form(max_length=500)]
SEE_OTHER = 303


def _back(path: str, done: str, ref: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={done}&ref={ref}", status_code=SEE_OTHER)


# Refunds ------------------------------------------------------------------------------------


@router.post("/refunds/{refund_id}/approve", response_model=None)
def approve_refund(
    refund_id: str,
    request: Request,
    staff: RefundDecider,
    session: DbSession,
    clock: AppClock,
    note: Note = "",
) -> RedirectResponse | HTMLResponse:
    """Finance approves a waiting refund; it goes to the gateway."""
    ctx: refunds.RefundsContext = request.app.state.refunds_context
    try:
        refund = refunds.lock_with_order(session, refund_id)
        refunds.approve(
            session, refund, refunds.actor_of(staff), clock.now(), note=note.strip() or None
        )
    except KnowpayError as exc:
        session.rollback()
        return refund_queue_with_error(request, staff, session, exc.code, exc.status)
    send_now(session, ctx, refund, clock)  # exactly as the API's approve route
    return _back("/admin/refunds", "refund_approved", refund_id)


@router.post("/refunds/{refund_id}/reject", response_model=None)
def reject_refund(
    refund_id: str,
    request: Request,
    staff: RefundDecider,
    session: DbSession,
    clock: AppClock,
    reason: Note = "",
) -> RedirectResponse | HTMLResponse:
    """Finance says no, with the reason the buyer reads."""
    if not reason.strip():
        return refund_queue_with_error(request, staff, session, "reason_required", 422)
    try:
        refunds.reject(
            session,
            refunds.lock_with_order(session, refund_id),
            refunds.actor_of(staff),
            reason.strip(),
            clock.now(),
        )
    except KnowpayError as exc:
        session.rollback()
        return refund_queue_with_error(request, staff, session, exc.code, exc.status)
    return _back("/admin/refunds", "refund_rejected", refund_id)


# Risk reviews -------------------------------------------------------------------------------


def _decide(
    request: Request,
    staff: Any,
    session: DbSession,
    clock: AppClock,
    decision_id: str,
    outcome: ReviewOutcome,
    note: str,
) -> RedirectResponse | HTMLResponse:
    """As the API's release and reject routes: decide the review, then let the payments
    domain (app.state.risk_releaser) open or fail the held attempt in the same transaction."""
    releaser: risk.ReviewReleaser | None = getattr(request.app.state, "risk_releaser", None)
    if releaser is None:
        return risk_queue_with_error(request, staff, session, "risk_review_releaser_missing", 503)
    try:
        decision = risk.decide_review(
            session, decision_id, staff.id, outcome, note.strip() or None, clock.now(), releaser
        )
    except KnowpayError as exc:
        session.rollback()
        return risk_queue_with_error(request, staff, session, exc.code, exc.status)
    if outcome is ReviewOutcome.REJECT:
        return _back("/admin/risk", "review_rejected", decision_id)
    return _back("/admin/risk", _released_notice(session, decision.payment_id), decision_id)


def _released_notice(session: DbSession, payment_id: str) -> str:
    """What releasing did: the attempt is at its gateway (pending there, or already paid), or
    it went nowhere — it had closed meanwhile (its order expired), its order could no longer be
    paid, or the gateway was unreachable. The releaser does not say; the payment does."""
    status = payments.get_payment(session, payment_id).status
    sent = status in (PaymentStatus.PENDING, PaymentStatus.SUCCEEDED)
    return "review_released" if sent else "review_released_payment_closed"


@router.post("/risk/{decision_id}/release", response_model=None)
def release_review(
    decision_id: str,
    request: Request,
    staff: Reviewer,
    session: DbSession,
    clock: AppClock,
    note: Note = "",
) -> RedirectResponse | HTMLResponse:
    """Let a held attempt through to its gateway."""
    return _decide(request, staff, session, clock, decision_id, ReviewOutcome.RELEASE, note)


@router.post("/risk/{decision_id}/reject", response_model=None)
def reject_review(
    decision_id: str,
    request: Request,
    staff: Reviewer,
    session: DbSession,
    clock: AppClock,
    note: Note = "",
) -> RedirectResponse | HTMLResponse:
    """Refuse a held attempt: it never reaches the gateway."""
    return _decide(request, staff, session, clock, decision_id, ReviewOutcome.REJECT, note)


# Limits -------------------------------------------------------------------------------------


class InvalidAmount(ValueError):
    pass


def minor_units(amount: str, currency: str) -> int:
    """`500` or `500.00` in `currency` → 50000 minor units; InvalidAmount otherwise."""
    try:
        exponent = currency_exponent(currency.strip().upper())
        # Any decimal error, not just a malformed number: `5e999999` parses, then overflows.
        minor = Decimal(amount.strip().replace(",", "")).scaleb(exponent)
    except (DecimalException, MoneyError) as exc:
        raise InvalidAmount(amount) from exc
    if not minor.is_finite() or minor != minor.to_integral_value():
        raise InvalidAmount(amount)
    if not 0 < minor <= MAX_AMOUNT_MINOR:  # and never build a million-digit int
        raise InvalidAmount(amount)
    return int(minor)


Field = Annotated[str, Form(max_length=200)]


@router.post("/limits", response_model=None)
def create_limit(
    request: Request,
    staff: LimitEditor,
    session: DbSession,
    clock: AppClock,
    scope: Field = "",
    period: Field = "",
    amount: Field = "",
    currency: Field = "CNY",
    buyer_level: Field = "",
    app_id: Field = "",
    channel: Field = "",
    description: Field = "",
) -> RedirectResponse | HTMLResponse:
    """Add a limit (as POST /v1/admin/limits)."""
    form = {
        "scope": scope,
        "period": period,
        "amount": amount,
        "currency": currency,
        "buyer_level": buyer_level,
        "app_id": app_id,
        "channel": channel,
        "description": description,
    }
    try:
        body = LimitCreate(
            scope=scope,  # validated by the model
            period=period,
            amount=minor_units(amount, currency),
            currency=currency,
            buyer_level=buyer_level.strip() or None,
            app_id=app_id.strip() or None,
            channel=channel.strip() or None,
            description=description.strip() or None,
        )
        created = limits.create_limit(session, body, clock.now())
    except InvalidAmount:
        return _limits_error(request, staff, session, "invalid_amount", 422, form)
    except ValidationError:
        return _limits_error(request, staff, session, "validation_error", 422, form)
    except KnowpayError as exc:
        session.rollback()
        return _limits_error(request, staff, session, exc.code, exc.status, form)
    return _back("/admin/limits", "limit_created", created.id)


@router.post("/limits/{limit_id}", response_model=None)
def update_limit(
    limit_id: str,
    request: Request,
    staff: LimitEditor,
    session: DbSession,
    clock: AppClock,
    amount: Field = "",
    description: Field = "",
    enabled: Field = "",
) -> RedirectResponse | HTMLResponse:
    """Change a limit's amount, description, or switch it on or off (as PATCH)."""
    try:
        current = limits.get_limit(session, limit_id)
        patch = LimitUpdate(
            amount=minor_units(amount, current.currency) if amount.strip() else None,
            # The field shows the current description: sent empty, it is cleared.
            description=description.strip(),
            enabled=enabled == "on",
        )
        limits.update_limit(session, limit_id, patch, clock.now())
    except InvalidAmount:
        return _limits_error(request, staff, session, "invalid_amount", 422, {})
    except ValidationError:
        return _limits_error(request, staff, session, "validation_error", 422, {})
    except KnowpayError as exc:
        session.rollback()
        return _limits_error(request, staff, session, exc.code, exc.status, {})
    return _back("/admin/limits", "limit_updated", limit_id)


def _limits_error(
    request: Request,
    staff: Any,
    session: DbSession,
    code: str,
    status: int,
    form: dict[str, str],
) -> HTMLResponse:
    context = limits_context(session)
    context["form"] = form
    return console_page(
        request, "console/limits.html", staff, status_code=status, error=code, **context
    )
