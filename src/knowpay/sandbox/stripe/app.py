"""The Stripe simulator's routes (mounted at /stripe by the sandbox app).

API:     /v1/payment_intents (create, retrieve, search, confirm, cancel) · /v1/refunds ·
         /v1/charges/{id} · /v1/balance_transactions · /v1/events (form-encoded, Bearer
         secret key; confirm and retrieve also with the publishable key and client secret)
Payer:   GET|POST /pay/{pi_id}?client_secret=… (a card form, like Stripe.js)
Admin:   GET /_keys · GET|POST|DELETE /_faults · DELETE /_faults/{id} · POST /_pay ·
         GET|POST /_webhook_endpoints · PATCH|DELETE /_webhook_endpoints/{id} ·
         POST /_webhook_endpoints/{id}/roll · GET /_notifications · GET /_requests ·
         POST /_reset
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from knowpay.sandbox.common.controls import add_control_routes
from knowpay.sandbox.stripe import pages
from knowpay.sandbox.stripe.book import CONFIRMABLE
from knowpay.sandbox.stripe.errors import StripeError
from knowpay.sandbox.stripe.faults import FaultKind
from knowpay.sandbox.stripe.simulator import Answer, StripeSimulator

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig


class FaultIn(BaseModel):
    """A fault to inject (see knowpay.sandbox.stripe.faults)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    out_trade_no: str | None = None
    times: int | None = Field(default=None, ge=1)
    count: int = Field(default=10, ge=1, le=100)
    delay_s: float = Field(default=1.0, ge=0, le=3600)
    status: int = Field(default=500, ge=500, le=599)
    seconds: float = Field(default=30.0, ge=0, le=3 * 86400)
    amount: int = Field(default=1, ge=0)
    operations: list[str] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)
    refund_outcome: Literal["succeeded", "failed"] = "succeeded"


class PayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_intent: str
    card: str = "4242424242424242"


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    enabled_events: list[str] = Field(default_factory=lambda: ["*"])
    secret: str | None = Field(default=None, pattern=r"^whsec_\w+$")


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    enabled_events: list[str] | None = None


class RollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_old: bool = True


def _json(answer: Answer) -> Response:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


def create_app(config: SandboxConfig) -> FastAPI:
    """The Stripe simulator."""
    sim = StripeSimulator(config)
    app = FastAPI(title="Stripe simulator", docs_url=None, redoc_url=None)
    app.state.simulator = sim

    def api_call(
        method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> Answer:
        answer = sim.handle(method, path, query, body, headers)
        if answer.stall_s:
            time.sleep(answer.stall_s)  # the work is done; the answer comes too late
        return answer

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async def api(path: str, request: Request) -> Response:
        body = await request.body()
        headers = {key.lower(): value for key, value in request.headers.items()}
        answer = await run_in_threadpool(
            api_call, request.method, f"/v1/{path}", request.url.query, body, headers
        )
        return _json(answer)

    def _intent_for_page(pi_id: str, client_secret: str) -> dict[str, Any]:
        intent = sim.book.get(pi_id, "payment_intent")
        if intent is None or intent["client_secret"] != client_secret:
            raise HTTPException(404, "No such PaymentIntent")
        return sim.book.snapshot(intent)

    @app.get("/pay/{pi_id}", response_class=HTMLResponse)
    def payer_page(pi_id: str, client_secret: str = "", return_url: str | None = None) -> Response:
        try:
            intent = _intent_for_page(pi_id, client_secret)
        except HTTPException:
            return HTMLResponse(pages.not_found(), status_code=404)
        if intent["status"] not in CONFIRMABLE:
            return HTMLResponse(pages.outcome(intent))
        action = f"{sim.base_url}/pay/{pi_id}"
        return HTMLResponse(pages.checkout(intent, action, sim.publishable_key, return_url))

    @app.post("/pay/{pi_id}", response_class=HTMLResponse)
    def payer_confirms(
        pi_id: str,
        key: Annotated[str, Form()],
        client_secret: Annotated[str, Form()],
        card_number: Annotated[str, Form()],
        return_url: Annotated[str, Form()] = "",
    ) -> Response:
        try:
            intent = _intent_for_page(pi_id, client_secret)
        except HTTPException:
            return HTMLResponse(pages.not_found(), status_code=404)
        if key != sim.publishable_key:
            return HTMLResponse(pages.not_found(), status_code=401)
        action = f"{sim.base_url}/pay/{pi_id}"
        try:
            intent = sim.pay(pi_id, card_number.replace(" ", ""))
        except StripeError as error:
            current = _intent_for_page(pi_id, client_secret)
            if current["status"] not in CONFIRMABLE:
                return HTMLResponse(pages.outcome(current), status_code=error.status)
            page = pages.checkout(current, action, sim.publishable_key, return_url, error.message)
            return HTMLResponse(page, status_code=error.status)
        if return_url:
            query = urlencode(
                {
                    "payment_intent": intent["id"],
                    "payment_intent_client_secret": intent["client_secret"],
                    "redirect_status": "succeeded",
                }
            )
            separator = "&" if "?" in return_url else "?"
            return RedirectResponse(f"{return_url}{separator}{query}", status_code=303)
        return HTMLResponse(pages.outcome(intent))

    _add_admin_routes(app, sim)
    return app


def _add_admin_routes(app: FastAPI, sim: StripeSimulator) -> None:
    @app.get("/_keys")
    def keys() -> dict[str, str]:
        """The keys a merchant copies from the dashboard, the API base and the payer page."""
        return sim.keys()

    @app.post("/_pay")
    def pay(body: PayIn) -> Response:
        """The payer confirms with a test card: the PaymentIntent, or Stripe's card error."""
        try:
            return JSONResponse(sim.pay(body.payment_intent, body.card))
        except StripeError as error:
            return JSONResponse(error.body(), status_code=error.status)

    @app.get("/_webhook_endpoints")
    def endpoints() -> list[dict[str, Any]]:
        return [endpoint.as_dict() for endpoint in sim.endpoints.values()]

    @app.post("/_webhook_endpoints", status_code=201)
    def add_endpoint(body: EndpointIn) -> dict[str, Any]:
        return sim.add_endpoint(body.url, body.enabled_events, body.secret).as_dict()

    @app.patch("/_webhook_endpoints/{endpoint_id}")
    def update_endpoint(endpoint_id: str, body: EndpointPatch) -> dict[str, Any]:
        endpoint = sim.endpoints.get(endpoint_id)
        if endpoint is None:
            raise HTTPException(404, "no such webhook endpoint")
        if body.url is not None:
            endpoint.url = body.url
        if body.enabled_events is not None:
            endpoint.enabled_events = body.enabled_events
        return endpoint.as_dict()

    @app.post("/_webhook_endpoints/{endpoint_id}/roll")
    def roll(endpoint_id: str, body: RollIn | None = None) -> dict[str, Any]:
        """A new signing secret; the old ones keep signing too unless keep_old is false."""
        endpoint = sim.roll_secret(endpoint_id, (body or RollIn()).keep_old)
        if endpoint is None:
            raise HTTPException(404, "no such webhook endpoint")
        return endpoint.as_dict()

    @app.delete("/_webhook_endpoints/{endpoint_id}", status_code=204)
    def delete_endpoint(endpoint_id: str) -> None:
        if sim.endpoints.pop(endpoint_id, None) is None:
            raise HTTPException(404, "no such webhook endpoint")

    @app.get("/_requests")
    def requests() -> list[dict[str, Any]]:
        """The API requests received: path, Idempotency-Key, Stripe-Version, status, replay."""
        return sim.requests()

    def notifications(
        out_trade_no: str | None = None,
        type: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every webhook delivery and each try, with the endpoint's answers."""
        return sim.notifier.log(out_trade_no, type)

    def reset() -> None:
        """Clear faults, deliveries (pending retries are never sent) and the request log;
        the webhook endpoints go back to the configured one."""
        sim.reset()

    add_control_routes(
        app, faults=sim.faults, fault_model=FaultIn, notifications=notifications, reset=reset
    )
