"""POST /notify/{gateway}: the gateways' door in, answered in each gateway's own format;
and the test gateway's sandbox, which plays notifications through that same door."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from knowpay.channels.errors import ProtocolError
from knowpay.channels.registry import ChannelRegistry
from knowpay.channels.testchannel.adapter import TestChannel
from knowpay.gateway_notifications import service
from knowpay.kit import context
from knowpay.kit.errors import PROBLEM_CONTENT_TYPE, Conflict, NotFound
from knowpay.kit.openapi import PROBLEM_REF, problem_responses
from knowpay.kit.web import AppClock, DbSession, SessionRoute

router = APIRouter(route_class=SessionRoute, tags=["notifications"])


class UnknownGateway(NotFound):
    code, title = "unknown_gateway", "No such gateway"


class TradeNotFound(NotFound):
    code, title = "trade_not_found", "The test gateway has no such trade"


class TradeClosed(Conflict):
    code, title = "trade_closed", "The test gateway closed this trade; it can no longer be paid"


class TradeNotSettled(Conflict):
    code, title = "trade_not_settled", "The test trade is neither paid nor failed"


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


async def _registry(request: Request) -> ChannelRegistry:
    registry: ChannelRegistry = request.app.state.channel_registry
    return registry


Registry = Annotated[ChannelRegistry, Depends(_registry)]


# Each gateway's answer is its own: Alipay `success`/`failure` and UnionPay `ok`/`fail` as text,
# Stripe, PayPal and the test gateway JSON, WeChat Pay 204 or a JSON `FAIL` (channels/*/
# transformers.py `ack`). Only knowpay's own errors (no such gateway, body too large) are
# problem+json.
_GATEWAY_ANSWER = {
    "text/plain": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object"}},
}
NOTIFY_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Received, in the gateway's own format", "content": _GATEWAY_ANSWER},
    204: {"description": "Received (WeChat Pay)"},
    400: {
        "description": "Not accepted, in the gateway's own format: it will send it again",
        "content": _GATEWAY_ANSWER,
    },
    503: {
        "description": "Cannot be verified now (the gateway's verification service or the "
        "database is unavailable): the gateway will send it again",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}},
        },
    },
}
_NOTIFICATION_BODY = {
    "requestBody": {
        "description": "The notification exactly as the gateway sends it (verified over these "
        "bytes): a form (Alipay, UnionPay) or JSON (WeChat Pay, Stripe, PayPal, test)",
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            },
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


@router.post(
    "/notify/{gateway}",
    response_class=Response,
    responses=NOTIFY_RESPONSES,
    openapi_extra=_NOTIFICATION_BODY,
)
def notify(
    gateway: str,
    body: RawBody,
    request: Request,
    registry: Registry,
    session: DbSession,
    clock: AppClock,
) -> Response:
    """A gateway's notification, verified over the raw body before anything is trusted."""
    channel = registry.for_gateway(gateway)
    if channel is None:
        raise UnknownGateway(f"No gateway {gateway!r} is configured here.")
    context.set_actor(f"gateway:{channel.gateway}")
    policy = request.app.state.settings.refunds
    handled = service.receive(session, channel, dict(request.headers), body, clock.now(), policy)
    return Response(
        handled.ack.body,
        status_code=handled.ack.status_code,
        media_type=handled.ack.content_type or None,
    )


class TestConfirm(BaseModel):
    """How the test gateway settles a waiting trade."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["succeeded", "failed"] = "succeeded"
    notify: bool = True


class TestConfirmOut(BaseModel):
    __test__ = False

    payment_id: str
    gateway_status: str
    notification: str | None


@router.post(
    "/sandbox/test/payments/{payment_id}/confirm",
    response_model=TestConfirmOut,
    tags=["sandbox"],
    responses=problem_responses(409),  # the trade was closed, or is neither paid nor failed
)
def confirm_test_payment(
    payment_id: str,
    request: Request,
    registry: Registry,
    session: DbSession,
    clock: AppClock,
    body: TestConfirm | None = None,
) -> TestConfirmOut:
    """The test gateway's buyer pays (or fails); its signed notification then goes through
    the same code as every gateway's. `notify: false` settles it silently (a lost notification)."""
    body = body or TestConfirm()
    channel = registry.adapter("test")
    if not isinstance(channel, TestChannel):  # pragma: no cover - the registry builds it
        raise UnknownGateway("The test channel is not available.")
    trade = channel.settle(payment_id, body.outcome, clock.now())
    if trade is None:
        raise TradeNotFound(f"The test gateway has no trade {payment_id}.")
    if trade.status == "closed":
        raise TradeClosed(f"The test gateway closed trade {payment_id}.")
    if not body.notify:
        return TestConfirmOut(payment_id=payment_id, gateway_status=trade.status, notification=None)
    try:
        headers, raw = channel.build_notification(payment_id)
    except ProtocolError as exc:
        raise TradeNotSettled(str(exc)) from exc
    context.set_actor(f"gateway:{channel.gateway}")
    handled = service.receive(
        session, channel, headers, raw, clock.now(), request.app.state.settings.refunds
    )
    return TestConfirmOut(
        payment_id=payment_id, gateway_status=trade.status, notification=handled.outcome
    )
