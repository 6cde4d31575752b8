"""The PayPal simulator's routes (mounted at /paypal by the sandbox app).

REST:   POST /v1/oauth2/token · POST /v2/checkout/orders · GET|PATCH /v2/checkout/orders/{id}
        · POST /v2/checkout/orders/{id}/capture · GET /v2/payments/captures/{id}
        · POST /v2/payments/captures/{id}/refund · GET /v2/payments/refunds/{id}
        · GET /v1/reporting/transactions · POST /v1/notifications/verify-webhook-signature
        · GET /v1/notifications/certs/{cert_id}
Buyer:  GET|POST /checkoutnow?token={order_id} (approve or cancel, then back to the shop)
Admin:  GET /_keys · GET|POST|DELETE /_faults · DELETE /_faults/{id} · GET /_notifications
        · POST /_reset · GET /_orders?out_trade_no= · GET /_orders/{id}
        · POST /_orders/{id}/approve · POST /_captures/{id}/complete|deny
        · GET /_refunds?out_trade_no= · POST /_refunds/{id}/complete · POST /_tokens/expire
        · GET|POST /_webhook_endpoints · PUT|DELETE /_webhook_endpoints/{id}
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from knowpay.sandbox.common.controls import add_control_routes
from knowpay.sandbox.paypal import api, crypto, pages
from knowpay.sandbox.paypal.faults import OPERATIONS, FaultKind
from knowpay.sandbox.paypal.simulator import AuthError, PayPalSimulator
from knowpay.sandbox.paypal.store import ApiError

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

T = TypeVar("T")


class FaultIn(BaseModel):
    """A fault to inject (see knowpay.sandbox.paypal.faults)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    out_trade_no: str | None = None
    times: int | None = Field(default=None, ge=1)
    count: int = Field(default=10, ge=1, le=100)
    delay_s: float = Field(default=1.0, ge=0, le=3600)
    status: int = Field(default=503, ge=500, le=599)
    seconds: float = Field(default=30.0, ge=0, le=600)
    operations: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048)


def _answer(status: int, body: dict[str, Any]) -> Response:
    headers = {"Paypal-Debug-Id": secrets.token_hex(7)}
    if status == 204:
        return Response(status_code=204, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _server_error(status: int) -> Response:
    body = {
        "name": "INTERNAL_SERVER_ERROR",
        "message": "An internal server error occurred.",
        "debug_id": secrets.token_hex(7),
        "links": [],
    }
    return JSONResponse(body, status_code=status)


_MALFORMED = object()
"""Not JSON: neither a dict nor a list, so the operation answers MALFORMED_REQUEST_JSON."""


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (UnicodeDecodeError, ValueError):
        return _MALFORMED


def _invoice(body: Any) -> str | None:
    try:
        value = body["purchase_units"][0]["invoice_id"]
    except (TypeError, KeyError, IndexError):
        return None
    return value if isinstance(value, str) else None


def create_app(config: SandboxConfig) -> FastAPI:
    """The PayPal simulator."""
    sim = PayPalSimulator(config)
    app = FastAPI(title="PayPal simulator", docs_url=None, redoc_url=None)
    app.state.simulator = sim

    async def rest(
        request: Request,
        operation: str,
        handler: Callable[[bytes], tuple[int, dict[str, Any]]],
        out_trade_no: Callable[[bytes], str | None],
        *,
        authenticated: bool = True,
    ) -> Response:
        if authenticated:
            try:
                sim.authorize(request.headers.get("authorization"))
            except AuthError as error:
                return JSONResponse(error.body, status_code=401)
        raw = await request.body()

        def work() -> Response:
            status, stall = sim.api_faults(operation, out_trade_no(raw))
            if status is not None:  # failed before doing anything
                return _server_error(status)
            try:
                answer = handler(raw)
            except ApiError as error:
                answer = (error.status, error.body)
            if stall:  # the work is done; the answer comes too late
                time.sleep(stall)
            return _answer(*answer)

        return await run_in_threadpool(work)

    def request_id(request: Request) -> str | None:
        return request.headers.get("paypal-request-id")

    def prefer(request: Request) -> str | None:
        return request.headers.get("prefer")

    @app.post("/v1/oauth2/token", include_in_schema=False)
    async def token(request: Request) -> Response:
        def issue(raw: bytes) -> tuple[int, dict[str, Any]]:
            form = dict(parse_qsl(raw.decode("latin-1")))
            try:
                return 200, sim.issue_token(
                    request.headers.get("authorization"), form.get("grant_type")
                )
            except AuthError as error:
                return 401, error.body

        return await rest(request, "oauth2.token", issue, lambda _: None, authenticated=False)

    @app.post("/v2/checkout/orders", include_in_schema=False)
    async def create_order(request: Request) -> Response:
        return await rest(
            request,
            "orders.create",
            lambda raw: api.create_order(sim, _loads(raw), request_id(request), prefer(request)),
            lambda raw: _invoice(_loads(raw)),
        )

    @app.get("/v2/checkout/orders/{order_id}", include_in_schema=False)
    async def show_order(order_id: str, request: Request) -> Response:
        return await rest(
            request,
            "orders.get",
            lambda _: api.show_order(sim, order_id),
            lambda _: sim.out_trade_no_of(order_id),
        )

    @app.patch("/v2/checkout/orders/{order_id}", include_in_schema=False)
    async def patch_order(order_id: str, request: Request) -> Response:
        return await rest(
            request,
            "orders.patch",
            lambda raw: api.patch_order(sim, order_id, _loads(raw)),
            lambda _: sim.out_trade_no_of(order_id),
        )

    @app.post("/v2/checkout/orders/{order_id}/capture", include_in_schema=False)
    async def capture_order(order_id: str, request: Request) -> Response:
        return await rest(
            request,
            "orders.capture",
            lambda _: api.capture_order(sim, order_id, request_id(request), prefer(request)),
            lambda _: sim.out_trade_no_of(order_id),
        )

    @app.get("/v2/payments/captures/{capture_id}", include_in_schema=False)
    async def show_capture(capture_id: str, request: Request) -> Response:
        return await rest(
            request,
            "captures.get",
            lambda _: api.show_capture(sim, capture_id),
            lambda _: sim.out_trade_no_of(capture_id=capture_id),
        )

    @app.post("/v2/payments/captures/{capture_id}/refund", include_in_schema=False)
    async def refund_capture(capture_id: str, request: Request) -> Response:
        return await rest(
            request,
            "captures.refund",
            lambda raw: api.refund_capture(
                sim, capture_id, _loads(raw), request_id(request), prefer(request)
            ),
            lambda _: sim.out_trade_no_of(capture_id=capture_id),
        )

    @app.get("/v2/payments/refunds/{refund_id}", include_in_schema=False)
    async def show_refund(refund_id: str, request: Request) -> Response:
        def out_trade_no(_raw: bytes) -> str | None:
            found = sim.book.refunds.get(refund_id)
            return sim.out_trade_no_of(found.order_id) if found else None

        return await rest(
            request, "refunds.get", lambda _: api.show_refund(sim, refund_id), out_trade_no
        )

    @app.get("/v1/reporting/transactions", include_in_schema=False)
    async def transactions(request: Request) -> Response:
        params = dict(request.query_params)
        return await rest(
            request,
            "transactions.list",
            lambda _: api.search_transactions(sim, params),
            lambda _: None,
        )

    @app.post("/v1/notifications/verify-webhook-signature", include_in_schema=False)
    async def verify(request: Request) -> Response:
        return await rest(
            request,
            "webhooks.verify-signature",
            lambda raw: api.verify_webhook_signature(sim, raw),
            lambda _: None,
        )

    @app.get("/v1/notifications/certs/{cert_id}", include_in_schema=False)
    def certificate(cert_id: str) -> Response:
        if cert_id != sim.cert_id:
            raise HTTPException(404, "no such certificate")
        return PlainTextResponse(
            crypto.certificate_pem(sim.certificate), media_type="application/x-pem-file"
        )

    _add_buyer_routes(app, sim)
    _add_admin_routes(app, sim)
    return app


def _add_buyer_routes(app: FastAPI, sim: PayPalSimulator) -> None:
    @app.get("/checkoutnow", response_class=HTMLResponse, include_in_schema=False)
    def checkout(token: str) -> Response:
        order = sim.book.orders.get(token)
        if order is None:
            return HTMLResponse(pages.error("Not found", "This order does not exist."), 404)
        if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            return HTMLResponse(
                pages.error("Cannot approve", f"This order is {order.status}."), 409
            )
        return HTMLResponse(pages.checkout(order, f"{sim.base_url}/checkoutnow?token={order.id}"))

    @app.post("/checkoutnow", response_class=HTMLResponse, include_in_schema=False)
    def decide(
        token: str, action: Annotated[Literal["approve", "cancel"], Form()] = "approve"
    ) -> Response:
        order = sim.book.orders.get(token)
        if order is None:
            return HTMLResponse(pages.error("Not found", "This order does not exist."), 404)
        if action == "approve":
            try:
                sim.approve(order.id)
            except ApiError as error:
                return HTMLResponse(pages.error("Cannot approve", str(error)), 409)
        target = sim.return_url(order, cancelled=action == "cancel")
        if target:
            return RedirectResponse(target, status_code=303)
        return HTMLResponse(pages.done(order, approved=action == "approve"))


def _add_admin_routes(app: FastAPI, sim: PayPalSimulator) -> None:
    @app.get("/_keys")
    def keys() -> dict[str, Any]:
        """client_id, client_secret, webhook_id, base_url and the cert host knowpay needs."""
        return sim.keys()

    def check_fault(fault: FaultIn) -> None:
        unknown = set(fault.operations) - OPERATIONS
        if unknown:
            raise HTTPException(422, f"unknown operations: {sorted(unknown)}")

    def notifications(out_trade_no: str | None = None) -> list[dict[str, Any]]:
        """Every webhook delivery and each try, with knowpay's answers."""
        return sim.notifier.log(out_trade_no)

    add_control_routes(
        app,
        faults=sim.faults,
        fault_model=FaultIn,
        notifications=notifications,
        reset=sim.reset,
        check_fault=check_fault,
    )

    @app.get("/_orders")
    def find_orders(out_trade_no: str) -> list[dict[str, Any]]:
        with sim.book.lock:
            found = [o for o in sim.book.orders.values() if o.invoice_id == out_trade_no]
            return [sim.writer.order(order) for order in found]

    @app.get("/_orders/{order_id}")
    def order(order_id: str) -> dict[str, Any]:
        return _or_404(lambda: api.show_order(sim, order_id)[1])

    @app.post("/_orders/{order_id}/approve")
    def approve(order_id: str) -> dict[str, Any]:
        """The buyer approves without the page (CHECKOUT.ORDER.APPROVED is sent)."""
        approved = _or_404(lambda: sim.approve(order_id))
        with sim.book.lock:
            return sim.writer.order(approved)

    @app.post("/_captures/{capture_id}/{outcome}")
    def settle_capture(capture_id: str, outcome: Literal["complete", "deny"]) -> dict[str, Any]:
        """A PENDING capture completes or is denied, with its webhook."""
        capture = _or_404(lambda: api.settle_capture(sim, capture_id, outcome))
        with sim.book.lock:
            return sim.writer.capture(capture)

    @app.get("/_refunds")
    def find_refunds(out_trade_no: str) -> list[dict[str, Any]]:
        """The refunds of a payment's captures, oldest first."""
        with sim.book.lock:
            orders = {o.id for o in sim.book.orders.values() if o.invoice_id == out_trade_no}
            found = [r for r in sim.book.refunds.values() if r.order_id in orders]
            return [sim.writer.refund(refund) for refund in found]

    @app.post("/_refunds/{refund_id}/complete")
    def complete_refund(refund_id: str) -> dict[str, Any]:
        refund = _or_404(lambda: api.complete_refund(sim, refund_id))
        with sim.book.lock:
            return sim.writer.refund(refund)

    @app.post("/_tokens/expire")
    def expire_tokens() -> dict[str, int]:
        """Every access token expires now (the next call gets a 401)."""
        return {"expired": sim.expire_tokens()}

    @app.get("/_webhook_endpoints")
    def webhooks() -> list[dict[str, str]]:
        return [{"id": key, "url": url} for key, url in sorted(sim.webhooks.items())]

    @app.post("/_webhook_endpoints", status_code=201)
    def add_webhook(body: WebhookIn) -> dict[str, str]:
        """Another webhook of this app (events go to every webhook, each signed for it)."""
        return sim.set_webhook(None, body.url)

    @app.put("/_webhook_endpoints/{webhook_id}")
    def point_webhook(webhook_id: str, body: WebhookIn) -> dict[str, str]:
        return sim.set_webhook(webhook_id, body.url)

    @app.delete("/_webhook_endpoints/{webhook_id}", status_code=204)
    def remove_webhook(webhook_id: str) -> None:
        if not sim.remove_webhook(webhook_id):
            raise HTTPException(404, "no such webhook")


def _or_404(call: Callable[[], T]) -> T:
    try:
        return call()
    except ApiError as error:
        raise HTTPException(error.status, error.issue) from None
