"""The simulated Stripe account: its keys and webhook endpoints, the API's rules (keys,
idempotency, errors, lists, search, expand), events and their signed delivery, and faults.

Where knowpay's webhooks go: Stripe sends events to the endpoints registered for the account
(dashboard or API), never to a URL named in a request. The simulator starts with one endpoint:
`gateways["stripe"]["webhook_url"]` when the config names one; otherwise, when the sandbox is
mounted under knowpay at `…/sandbox` (the demo), knowpay's own `…/notify/stripe`; otherwise
`http://127.0.0.1:8000/notify/stripe` (knowpay's default address). Tests move it with
`PATCH /stripe/_webhook_endpoints/{id}` or add more with `POST /stripe/_webhook_endpoints`."""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knowpay.sandbox.stripe import forms
from knowpay.sandbox.stripe.book import TEST_PAYMENT_METHODS, Obj, StripeBook, new_id
from knowpay.sandbox.stripe.errors import StripeError, invalid
from knowpay.sandbox.stripe.faults import (
    API_FAULTS,
    REFUND_FAULTS,
    WEBHOOK_FAULTS,
    Fault,
    FaultBook,
)
from knowpay.sandbox.stripe.notifier import Delivery, Notifier
from knowpay.sandbox.stripe.signing import header, new_webhook_secret, random_token

if TYPE_CHECKING:
    from knowpay.sandbox.app import SandboxConfig

API_VERSION = "2024-06-20"
DEFAULT_KNOWPAY_WEBHOOK = "http://127.0.0.1:8000/notify/stripe"
PUBLISHABLE_OPERATIONS = frozenset({"retrieve_payment_intent", "confirm_payment_intent"})
_SEARCH_CLAUSE = re.compile(r"^(metadata\['([^']+)'\]|[a-z_]+):'((?:[^'\\]|\\.)*)'$")


@dataclass
class Endpoint:
    """A webhook endpoint; while its secret is rolled, the older secrets still sign."""

    id: str
    url: str
    secrets: list[str]
    enabled_events: list[str] = field(default_factory=lambda: ["*"])
    created: int = field(default_factory=lambda: int(time.time()))

    def wants(self, event_type: str) -> bool:
        return "*" in self.enabled_events or event_type in self.enabled_events

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "enabled_events": list(self.enabled_events),
            "secret": self.secrets[0],
            "secrets": list(self.secrets),
            "status": "enabled",
            "created": self.created,
        }


@dataclass
class Answer:
    """An API answer: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0


@dataclass
class _Call:
    operation: str
    method: str
    path: str
    params: dict[str, Any]
    args: tuple[str, ...]
    publishable: bool
    request_id: str
    idempotency_key: str | None


Handler = Callable[[_Call], Obj]
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/v1/payment_intents$"), "create_payment_intent"),
    ("GET", re.compile(r"^/v1/payment_intents/search$"), "search_payment_intents"),
    ("GET", re.compile(r"^/v1/payment_intents$"), "list_payment_intents"),
    ("GET", re.compile(r"^/v1/payment_intents/(pi_\w+)$"), "retrieve_payment_intent"),
    ("POST", re.compile(r"^/v1/payment_intents/(pi_\w+)/confirm$"), "confirm_payment_intent"),
    ("POST", re.compile(r"^/v1/payment_intents/(pi_\w+)/cancel$"), "cancel_payment_intent"),
    ("GET", re.compile(r"^/v1/charges/(ch_\w+)$"), "retrieve_charge"),
    ("POST", re.compile(r"^/v1/refunds$"), "create_refund"),
    ("GET", re.compile(r"^/v1/refunds$"), "list_refunds"),
    ("GET", re.compile(r"^/v1/refunds/(re_\w+)$"), "retrieve_refund"),
    ("GET", re.compile(r"^/v1/balance_transactions$"), "list_balance_transactions"),
    ("GET", re.compile(r"^/v1/events$"), "list_events"),
    ("GET", re.compile(r"^/v1/events/(evt_\w+)$"), "retrieve_event"),
]


def default_webhook_url(public_url: str) -> str:
    base = public_url.rstrip("/")
    if base.endswith("/sandbox"):
        return base.removesuffix("/sandbox") + "/notify/stripe"
    return DEFAULT_KNOWPAY_WEBHOOK


class StripeSimulator:
    def __init__(self, config: SandboxConfig) -> None:
        section = config.gateways.get("stripe", {})
        self.base_url = config.public_url.rstrip("/") + "/stripe"
        self.secret_key = section.get("secret_key") or "sk_test_" + random_token(32)
        self.publishable_key = section.get("publishable_key") or "pk_test_" + random_token(32)
        self.api_version = section.get("api_version") or API_VERSION
        self._initial_endpoint = (
            section.get("webhook_url") or default_webhook_url(config.public_url),
            section.get("webhook_secret") or new_webhook_secret(),
        )
        self.book = StripeBook(livemode=False)
        self.faults = FaultBook()
        self.notifier = Notifier(config.time_scale)
        self.endpoints: dict[str, Endpoint] = {}
        self._default_endpoint_id = ""
        self._lock = threading.Lock()
        self._stored: dict[tuple[str, str], tuple[str, Answer, str]] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._requests: list[dict[str, Any]] = []
        self._context = threading.local()
        self._forger = new_webhook_secret()
        self._handlers: dict[str, Handler] = {
            "create_payment_intent": self._create_intent,
            "search_payment_intents": self._search_intents,
            "list_payment_intents": lambda call: self._page(
                self.book.all("payment_intent"), call, "/v1/payment_intents"
            ),
            "retrieve_payment_intent": lambda call: self.book.require(
                call.args[0], "payment_intent", "intent"
            ),
            "confirm_payment_intent": self._confirm,
            "cancel_payment_intent": self._cancel,
            "retrieve_charge": lambda call: self.book.require(call.args[0], "charge"),
            "create_refund": self._create_refund,
            "list_refunds": self._list_refunds,
            "retrieve_refund": lambda call: self.book.require(call.args[0], "refund"),
            "list_balance_transactions": self._list_transactions,
            "list_events": self._list_events,
            "retrieve_event": lambda call: self.book.require(call.args[0], "event"),
        }
        self.reset_endpoints()

    # Keys and endpoints ---------------------------------------------------------------------

    def keys(self) -> dict[str, str]:
        """What a merchant copies from the dashboard (and where the API and payer page are)."""
        endpoint = self.endpoints.get(self._default_endpoint_id)
        return {
            "secret_key": self.secret_key,
            "publishable_key": self.publishable_key,
            "webhook_secret": endpoint.secrets[0] if endpoint else "",
            "webhook_endpoint_id": self._default_endpoint_id,
            "webhook_url": endpoint.url if endpoint else "",
            "base_url": self.base_url,
            "api_version": self.api_version,
            "payer_page_url": (
                f"{self.base_url}/pay/{{id}}?client_secret={{client_secret}}"
                "&return_url={return_url}"
            ),
        }

    def reset_endpoints(self) -> None:
        url, secret = self._initial_endpoint
        with self._lock:
            endpoint = Endpoint(id=new_id("we_"), url=url, secrets=[secret])
            self.endpoints = {endpoint.id: endpoint}
            self._default_endpoint_id = endpoint.id

    def add_endpoint(
        self, url: str, enabled_events: list[str] | None = None, secret: str | None = None
    ) -> Endpoint:
        endpoint = Endpoint(
            id=new_id("we_"),
            url=url,
            secrets=[secret or new_webhook_secret()],
            enabled_events=enabled_events or ["*"],
        )
        with self._lock:
            self.endpoints[endpoint.id] = endpoint
        return endpoint

    def roll_secret(self, endpoint_id: str, keep_old: bool = True) -> Endpoint | None:
        """A new secret; the old ones keep signing alongside it unless dropped."""
        with self._lock:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is not None:
                endpoint.secrets = [new_webhook_secret()] + (endpoint.secrets if keep_old else [])
            return endpoint

    # The API --------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, body: bytes, headers: Mapping[str, str]
    ) -> Answer:
        """One API request, answered as Stripe answers it."""
        request_id = "req_" + random_token(14)
        key = headers.get("idempotency-key") if method == "POST" else None
        try:
            params = forms.parse(query)
            if method == "POST":
                params.update(forms.parse(body.decode("utf-8")))
            api_key = _api_key(headers, params)
            operation, args = _route(method, path)
            call = _Call(operation, method, path, params, args, False, request_id, key)
            call.publishable = self._authorize(api_key, call)
        except (forms.FormError, UnicodeDecodeError) as exc:
            answer = Answer(400, StripeError(400, str(exc)).body())
        except StripeError as error:
            answer = Answer(error.status, error.body())
        else:
            answer = self._run(call, api_key)
        answer.headers.update({"Request-Id": request_id, "Stripe-Version": self.api_version})
        with self._lock:
            self._requests.append(
                {"method": method, "path": path, "idempotency_key": key,
                 "stripe_version": headers.get("stripe-version"), "status": answer.status,
                 "replayed": answer.headers.get("Idempotent-Replayed") == "true"}
            )  # fmt: skip
        return answer

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def _authorize(self, api_key: str, call: _Call) -> bool:
        """True for a publishable key (Stripe.js), which must bring the client secret."""
        if api_key == self.secret_key:
            return False
        if api_key == self.publishable_key:
            if call.operation not in PUBLISHABLE_OPERATIONS:
                raise StripeError(
                    401,
                    "This API call cannot be made with a publishable API key. Please use a "
                    "secret API key.",
                )
            intent = self.book.require(call.args[0], "payment_intent", "intent")
            if call.params.get("client_secret") != intent["client_secret"]:
                raise StripeError(
                    400,
                    "The client_secret provided does not match the client_secret associated "
                    "with the PaymentIntent.",
                    param="client_secret",
                )
            return True
        masked = api_key[:8] + "*" * 8 + api_key[-4:] if len(api_key) > 12 else "****"
        raise StripeError(401, f"Invalid API Key provided: {masked}")

    def _run(self, call: _Call, api_key: str) -> Answer:
        out_trade_no = self._trade_of(call)
        stall = 0.0
        for fault in self.faults.take(API_FAULTS, out_trade_no, operation=call.operation, limit=1):
            if fault.kind == "http_5xx":
                error = StripeError(fault.status, "An unknown error occurred", type="api_error")
                return Answer(fault.status, error.body(), {"Stripe-Should-Retry": "true"})
            stall = fault.seconds
        if call.idempotency_key is None:
            answer = self._execute(call)
        else:
            answer = self._idempotent(call, api_key, call.idempotency_key)
        answer.stall_s = stall
        return answer

    def _idempotent(self, call: _Call, api_key: str, key: str) -> Answer:
        scope = (api_key, key)
        fingerprint = f"{call.method} {call.path} {forms.fingerprint(call.params)}"
        with self._lock:
            stored = self._stored.get(scope)
            if stored is None and scope in self._in_flight:
                error = StripeError(
                    409,
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    f"going through): {key}. Please try again later.",
                    type="idempotency_error",
                    code="idempotency_key_in_use",
                )
                return Answer(409, error.body())
            if stored is None:
                self._in_flight.add(scope)
        if stored is not None:
            first, answer, original = stored
            if first != fingerprint:
                error = StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they "
                    f"were first used with. Try using a key other than '{key}' if you meant to "
                    "execute a different request.",
                    type="idempotency_error",
                )
                return Answer(400, error.body())
            return Answer(
                answer.status,
                copy.deepcopy(answer.body),
                {"Idempotent-Replayed": "true", "Original-Request": original},
            )
        try:
            answer = self._execute(call)
        finally:
            with self._lock:
                self._in_flight.discard(scope)
        if answer.status < 500:
            with self._lock:
                self._stored[scope] = (fingerprint, answer, call.request_id)
        return answer

    def _execute(self, call: _Call) -> Answer:
        self._context.request = {"id": call.request_id, "idempotency_key": call.idempotency_key}
        try:
            result = self._handlers[call.operation](call)
            body = self._expand(self.book.snapshot(result), call.params.get("expand"))
        except StripeError as error:
            body = error.body()
            if call.publishable and isinstance(body["error"].get("payment_intent"), dict):
                body["error"]["payment_intent"]["metadata"] = {}
            return Answer(error.status, body)
        finally:
            self._context.request = None
        if call.publishable:  # Stripe.js sees no metadata
            body["metadata"] = {}
        return Answer(200, body)

    def _trade_of(self, call: _Call) -> str | None:
        """The out_trade_no a call concerns (for faults aimed at one trade)."""
        if call.operation == "create_payment_intent":
            metadata = call.params.get("metadata")
            value = metadata.get("out_trade_no") if isinstance(metadata, dict) else None
            return value if isinstance(value, str) else None
        if call.args:
            obj = self.book.get(call.args[0])
        else:
            obj = self.book.get(str(call.params.get("payment_intent") or ""))
        if obj is None:
            return None
        if obj.get("object") == "refund":
            obj = self.book.get(obj["payment_intent"]) or obj
        value = (obj.get("metadata") or {}).get("out_trade_no")
        return value if isinstance(value, str) else None

    # Operations -----------------------------------------------------------------------------

    def _create_intent(self, call: _Call) -> Obj:
        params = _only(
            call.params,
            {"amount", "currency", "metadata", "description", "automatic_payment_methods",
             "payment_method_types", "confirm", "payment_method", "return_url", "capture_method",
             "receipt_email", "expand"},
        )  # fmt: skip
        intent = self.book.create_intent(params, self._emit)
        if params.get("confirm") == "true":
            self.book.confirm(intent, _card_number(params), self._emit)
        return intent

    def _confirm(self, call: _Call) -> Obj:
        params = _only(
            call.params,
            {"payment_method", "payment_method_data", "return_url", "client_secret", "expand",
             "receipt_email", "use_stripe_sdk"},
        )  # fmt: skip
        intent = self.book.require(call.args[0], "payment_intent", "intent")
        return self.book.confirm(intent, _card_number(params), self._emit)

    def pay(self, intent_id: str, number: str) -> Obj:
        """The payer confirms with a card (the payer page and /_pay); raises StripeError."""
        intent = self.book.require(intent_id, "payment_intent", "intent")
        self._context.request = {"id": "req_" + random_token(14), "idempotency_key": None}
        try:
            return self.book.snapshot(self.book.confirm(intent, number, self._emit))
        finally:
            self._context.request = None

    def _cancel(self, call: _Call) -> Obj:
        params = _only(call.params, {"cancellation_reason", "expand"})
        intent = self.book.require(call.args[0], "payment_intent", "intent")
        return self.book.cancel(intent, params.get("cancellation_reason"), self._emit)

    def _create_refund(self, call: _Call) -> Obj:
        params = _only(
            call.params,
            {"payment_intent", "charge", "amount", "reason", "metadata", "expand"},
        )
        slow = self.faults.take(REFUND_FAULTS, self._trade_of(call), limit=1)
        refund = self.book.create_refund(params, bool(slow), self._emit)
        if slow:
            timer = threading.Timer(
                slow[0].seconds, self._settle_refund, args=(refund["id"], slow[0].refund_outcome)
            )
            timer.daemon = True
            timer.start()
        return refund

    def _settle_refund(self, refund_id: str, outcome: str) -> None:
        self._context.request = {"id": None, "idempotency_key": None}
        try:
            self.book.settle_refund(refund_id, outcome, self._emit)
        finally:
            self._context.request = None

    def _list_refunds(self, call: _Call) -> Obj:
        params = _only(
            call.params, {"payment_intent", "charge", "limit", "starting_after", "ending_before",
                          "created", "expand"}
        )  # fmt: skip
        refunds = [
            refund
            for refund in self.book.all("refund")
            if params.get("payment_intent") in (None, refund["payment_intent"])
            and params.get("charge") in (None, refund["charge"])
        ]
        return self._page(_created(refunds, params.get("created")), call, "/v1/refunds")

    def _list_transactions(self, call: _Call) -> Obj:
        params = _only(
            call.params, {"limit", "starting_after", "ending_before", "created", "type",
                          "source", "payout", "currency", "expand"}
        )  # fmt: skip
        found = [
            txn
            for txn in self.book.all("balance_transaction")
            if params.get("type") in (None, txn["type"])
            and params.get("source") in (None, txn["source"])
            and params.get("currency") in (None, txn["currency"])
        ]
        return self._page(_created(found, params.get("created")), call, "/v1/balance_transactions")

    def _list_events(self, call: _Call) -> Obj:
        params = _only(
            call.params,
            {"limit", "starting_after", "ending_before", "created", "type", "types", "expand"},
        )
        events = [e for e in self.book.all("event") if params.get("type") in (None, e["type"])]
        return self._page(_created(events, params.get("created")), call, "/v1/events")

    def _search_intents(self, call: _Call) -> Obj:
        params = _only(call.params, {"query", "limit", "page", "expand"})
        query = params.get("query")
        if not isinstance(query, str) or not query.strip():
            raise StripeError(400, "Missing required param: query.", code="parameter_missing",
                              param="query")  # fmt: skip
        clauses = [_clause(text.strip()) for text in query.split(" AND ")]
        found = [
            intent
            for intent in self.book.all("payment_intent")
            if all(_matches(intent, clause) for clause in clauses)
        ]
        limit = _limit(params.get("limit"))
        return {
            "object": "search_result",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }

    def _page(self, items: list[Obj], call: _Call, url: str) -> Obj:
        limit = _limit(call.params.get("limit"))
        after, before = call.params.get("starting_after"), call.params.get("ending_before")
        ids = [item["id"] for item in items]
        if after:
            if after not in ids:
                raise invalid(f"No such object: '{after}'", "starting_after")
            items = items[ids.index(after) + 1 :]
            return {"object": "list", "data": items[:limit], "has_more": len(items) > limit,
                    "url": url}  # fmt: skip
        if before:
            if before not in ids:
                raise invalid(f"No such object: '{before}'", "ending_before")
            items = items[: ids.index(before)]
            return {"object": "list", "data": items[-limit:], "has_more": len(items) > limit,
                    "url": url}  # fmt: skip
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}

    def _expand(self, body: Obj, paths: Any) -> Obj:
        if paths is None:
            return body
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise invalid("Invalid array", "expand")
        for path in paths:
            if body.get("object") in ("list", "search_result") and path.startswith("data."):
                for item in body["data"]:
                    self._expand_one(item, path.removeprefix("data."))
            else:
                self._expand_one(body, path)
        return body

    def _expand_one(self, obj: Obj, path: str) -> None:
        head, _, rest = path.partition(".")
        value = obj.get(head)
        if head not in obj or (value is not None and not isinstance(value, str | dict)):
            raise invalid(f"This property cannot be expanded ({path}).", "expand")
        if isinstance(value, str):
            found = self.book.get(value)
            if found is None:
                raise invalid(f"This property cannot be expanded ({path}).", "expand")
            obj[head] = value = self.book.snapshot(found)
        if rest and isinstance(value, dict):
            self._expand_one(value, rest)

    # Events ---------------------------------------------------------------------------------

    def _emit(self, event_type: str, obj: Obj) -> None:
        """Record an event about `obj` as it is now and send it to every endpoint that wants it."""
        request = getattr(self._context, "request", None) or {"id": None, "idempotency_key": None}
        with self._lock:
            endpoints = [e for e in self.endpoints.values() if e.wants(event_type)]
        event: Obj = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": self.api_version,
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": self.book.livemode,
            "pending_webhooks": len(endpoints),
            "request": dict(request),
            "type": event_type,
        }
        self.book.add_event(event)
        out_trade_no = (obj.get("metadata") or {}).get("out_trade_no")
        taken = self.faults.take(WEBHOOK_FAULTS, out_trade_no, event_type=event_type)
        faults: dict[str, Fault] = {fault.kind: fault for fault in taken}
        sent = event
        if "tampered_amount" in faults:
            sent = copy.deepcopy(event)
            for name in ("amount", "amount_received", "amount_captured"):
                if name in sent["data"]["object"]:
                    sent["data"]["object"][name] = faults["tampered_amount"].amount
        body = json.dumps(sent, indent=2).encode("utf-8")  # Stripe's bodies are pretty-printed
        for endpoint in endpoints:
            self.notifier.submit(
                Delivery(
                    id=self.notifier.next_id(),
                    event_id=event["id"],
                    event_type=event_type,
                    out_trade_no=out_trade_no if isinstance(out_trade_no, str) else None,
                    endpoint_id=endpoint.id,
                    url=endpoint.url,
                    body=body,
                    signer=self._signer(endpoint, faults),
                    copies=faults["duplicate"].count if "duplicate" in faults else 1,
                    lost="lost" in faults,
                    forged="forged_signature" in faults,
                    first_delay_s=faults["delayed"].delay_s if "delayed" in faults else 0.0,
                )
            )

    def _signer(self, endpoint: Endpoint, faults: Mapping[str, Fault]) -> Callable[[bytes], str]:
        forged = "forged_signature" in faults
        age = faults["stale_signature"].seconds if "stale_signature" in faults else 0.0

        def sign(body: bytes) -> str:
            with self._lock:
                in_force = [self._forger] if forged else list(endpoint.secrets)
            return header(in_force, body, int(time.time() - age))

        return sign

    def reset(self) -> None:
        """Faults, deliveries and endpoints back to the start (objects stay)."""
        self.faults.clear()
        self.notifier.reset()
        self.reset_endpoints()
        with self._lock:
            self._requests.clear()


# Helpers -------------------------------------------------------------------------------------


def _api_key(headers: Mapping[str, str], params: dict[str, Any]) -> str:
    """Bearer (stripe-python), Basic with the key as user (curl -u), or `key=` (Stripe.js)."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    body_key = params.pop("key", None)
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    if scheme.lower() == "basic" and credentials:
        try:
            return base64.b64decode(credentials).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            pass
    if isinstance(body_key, str) and body_key:
        return body_key
    raise StripeError(
        401,
        "You did not provide an API key. You need to provide your API key in the Authorization "
        "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
    )


def _route(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    for route_method, pattern, operation in _ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return operation, match.groups()
    raise StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we "
        "can help at https://support.stripe.com/.",
    )


def _only(params: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    for name in params:
        if name not in allowed:
            raise StripeError(400, f"Received unknown parameter: {name}", code="parameter_unknown",
                              param=name)  # fmt: skip
    return params


def _card_number(params: Mapping[str, Any]) -> str:
    method = params.get("payment_method")
    if isinstance(method, str) and method:
        number = TEST_PAYMENT_METHODS.get(method)
        if number is None:
            raise StripeError(400, f"No such PaymentMethod: '{method}'", code="resource_missing",
                              param="payment_method")  # fmt: skip
        return number
    data = params.get("payment_method_data")
    card = data.get("card") if isinstance(data, dict) else None
    number = card.get("number") if isinstance(card, dict) else None
    if not isinstance(number, str) or not number:
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    return number.replace(" ", "")


def _limit(value: Any) -> int:
    if value is None:
        return 10
    if not isinstance(value, str) or not value.isdigit() or not 1 <= int(value) <= 100:
        raise invalid("Invalid limit: must be an integer between 1 and 100", "limit")
    return int(value)


def _created(items: list[Obj], bounds: Any) -> list[Obj]:
    if bounds is None:
        return items
    if isinstance(bounds, str) and bounds.isdigit():
        return [item for item in items if item["created"] == int(bounds)]
    if not isinstance(bounds, dict):
        raise invalid("Invalid created filter", "created")
    tests: dict[str, Callable[[int, int], bool]] = {
        "gte": lambda a, b: a >= b,
        "gt": lambda a, b: a > b,
        "lte": lambda a, b: a <= b,
        "lt": lambda a, b: a < b,
    }
    for name, value in bounds.items():
        if name not in tests or not isinstance(value, str) or not value.isdigit():
            raise invalid(f"Invalid created[{name}]", f"created[{name}]")
        items = [item for item in items if tests[name](item["created"], int(value))]
    return items


def _clause(text: str) -> tuple[str, str | None, str]:
    match = _SEARCH_CLAUSE.match(text)
    if match is None:
        raise invalid(f"Invalid search query: {text}", "query")
    field_name = "metadata" if match.group(2) is not None else match.group(1)
    if field_name not in ("metadata", "status", "currency"):
        raise invalid(
            f"Field '{field_name}' is an unsupported search field for resource payment_intents.",
            "query",
        )
    value = re.sub(r"\\(.)", r"\1", match.group(3))
    return field_name, match.group(2), value


def _matches(intent: Obj, clause: tuple[str, str | None, str]) -> bool:
    field_name, key, value = clause
    if field_name == "metadata":
        return bool(intent["metadata"].get(key or "") == value)
    return bool(intent.get(field_name) == value)
