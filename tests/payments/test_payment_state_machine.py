"""A stateful property test of paying orders, driven over the HTTP API.

Hypothesis plays random sequences of: creating orders, starting payment attempts on the
`test` channel, settling them at the test gateway (with the notification delivered, lost or
replayed), active queries, closing orders, letting orders expire, and captures that arrive
after their order was paid or closed. A model predicts every answer. After each step the
money invariants of SPEC.md are checked over the whole database, and the database is
compared with the model.

Every example starts from the same database (a shop: an app, its buyers and products, and
nothing else) and the clock at the same moment, so the whole-database checks judge that
example alone and a failure replays and shrinks deterministically. SQLite gets its snapshot
back through the backup API; PostgreSQL empties every table the shop does not use (the
append-only ledger by TRUNCATE, the rest by the faster DELETE).
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import hypothesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, event
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Table, func, select, text

from knowpay.entitlements.models import Entitlement, EntitlementGrant
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Base, Database
from knowpay.kit.outbox_models import OutboxEvent
from knowpay.orders.models import Order, OrderItem
from knowpay.payments import integrity
from knowpay.payments.models import Payment
from tests.builders import Builders, Caller

# Sized to run in about 20 s on SQLite; raise the environment variable for a deeper search.
MAX_EXAMPLES = int(os.environ.get("KNOWPAY_STATE_MACHINE_EXAMPLES", "15"))
STEPS = 25
MAX_ORDERS = 4
"""Orders per example: a few orders with much happening to each."""
MAX_OPEN_ORDERS = 2
"""Unpaid, unexpired orders at a time, before `create_order` waits for one to settle."""
MAX_ATTEMPTS = 3
"""Attempts per order that `pay_open_order` and `buyer_pays_twice` start."""

ORDER_STATUSES = frozenset({"created", "paid", "partially_refunded", "refunded", "closed"})
CAPTURED = frozenset({"paid", "partially_refunded", "refunded"})
# Where an order may be seen next, given where it was seen last (staying put included).
ALLOWED_NEXT = {
    "created": frozenset({"created", "paid", "closed"}),
    "paid": frozenset({"paid", "partially_refunded", "refunded"}),
    "partially_refunded": frozenset({"partially_refunded", "refunded"}),
    "refunded": frozenset({"refunded"}),
    "closed": frozenset({"closed"}),
}
# The test gateway's trade right after knowpay opened it with a test_outcome.
OPENED = {"succeeded": "paid", "failed": "failed", "pending": "waiting"}
# What the test gateway makes of a waiting trade when the buyer confirms it.
SETTLED = {"succeeded": "paid", "failed": "failed"}


@dataclass
class PaymentModel:
    id: str
    order_id: str
    gateway: str
    """The test gateway's trade: waiting, paid, failed or closed."""
    status: str
    """What knowpay must say: pending, succeeded, failed or closed."""
    duplicate: bool = False
    notified: set[str] = field(default_factory=set)
    """Trade states whose notification knowpay has received."""


@dataclass
class OrderModel:
    id: str
    user_id: str
    expires_at: datetime
    status: str = "created"
    paid_by: str | None = None
    payments: list[str] = field(default_factory=list)


BUYERS = 2
PRODUCTS: dict[str, dict[str, Any]] = {
    "Course": {"kind": "course", "prices": [{"amount": 9900, "currency": "CNY"}]},
    "Monthly": {
        "kind": "membership",
        "period_days": 30,
        "prices": [{"amount": 1990, "currency": "CNY"}],
    },
    "Yearly": {
        "kind": "membership",
        "period_days": 365,
        "prices": [{"amount": 19800, "currency": "CNY"}],
    },
}


@dataclass
class Shop:
    app: Caller
    buyers: list[Caller]
    products: dict[str, dict[str, Any]]
    """By title."""


def _open_shop(build: Builders) -> Shop:
    app = build.app()
    return Shop(
        app,
        [build.buyer(app) for _ in range(BUYERS)],
        {title: build.product(app, title=title, **fields) for title, fields in PRODUCTS.items()},
    )


LEDGER_TABLES = frozenset({"postings", "journal_entries"})
"""Guarded append-only: rows are never deleted, even here (TRUNCATE is not a DELETE)."""


class Snapshot:
    """The database as it is now, to start every example from."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._copy: sqlite3.Connection | None = None
        self._empty: list[Table] = []
        if database.dialect == "sqlite":
            self._copy = sqlite3.connect(":memory:", check_same_thread=False)
            self._backup(into=self._copy)
            return
        with database.engine.connect() as connection:
            self._empty = [
                table
                for table in Base.metadata.sorted_tables
                if connection.execute(select(table).limit(1)).first() is None
            ]

    def restore(self) -> None:
        if self._copy is not None:
            self._backup(from_=self._copy)
            return
        ledger = [t.name for t in self._empty if t.name in LEDGER_TABLES]
        with self._database.engine.begin() as connection:
            if ledger:
                connection.execute(text(f"TRUNCATE {', '.join(ledger)}"))
            for table in reversed(self._empty):
                if table.name not in LEDGER_TABLES:
                    connection.execute(table.delete())

    def _backup(
        self, *, into: sqlite3.Connection | None = None, from_: sqlite3.Connection | None = None
    ) -> None:
        live = self._database.engine.raw_connection()
        try:
            connection = live.driver_connection
            assert isinstance(connection, sqlite3.Connection)
            if into is not None:
                connection.backup(into)
            if from_ is not None:
                from_.backup(connection)
        finally:
            live.close()

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()


def _code(response: Any) -> str | None:
    """The problem+json code of an error response."""
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        code: str = response.json()["code"]
        return code
    return None


def _machine(
    client: TestClient,
    database: Database,
    clock: FrozenClock,
    shop: Shop,
    snapshot: Snapshot,
    seen: Counter[str],
) -> type[RuleBasedStateMachine]:
    """The machine, bound to this test's fixtures; every example starts from `snapshot` at
    the clock's present moment. `seen` counts the paths it took."""
    start = clock.now()

    def note(what: str) -> None:
        seen[what] += 1
        event(what)

    class PaymentMachine(RuleBasedStateMachine):
        orders = Bundle("orders")
        payments = Bundle("payments")

        def __init__(self) -> None:
            super().__init__()
            snapshot.restore()
            clock.set(start)
            self.order_model: dict[str, OrderModel] = {}
            self.payment_model: dict[str, PaymentModel] = {}
            self.seen_status: dict[str, str] = {}

        # Talking to the API ------------------------------------------------------------------

        def _post(self, path: str, body: dict[str, Any], *, auth: bool = True) -> Any:
            headers = shop.app.headers if auth else None
            response = client.post(path, json=body, headers=headers)
            assert response.status_code < 500, f"{path}: {response.status_code} {response.text}"
            return response

        def _expect(self, response: Any, status: int, code: str | None = None) -> dict[str, Any]:
            assert response.status_code == status, (
                f"expected {status} {code or ''}, got {response.status_code}: {response.text}"
            )
            if code is not None:
                assert _code(response) == code, response.text
            body: dict[str, Any] = response.json()
            return body

        # The model's moves -------------------------------------------------------------------

        def _capture(self, payment: PaymentModel) -> None:
            """knowpay records money the gateway captured, exactly once."""
            if payment.status == "succeeded":
                return
            payment.status = "succeeded"
            order = self.order_model[payment.order_id]
            if order.status != "created":
                payment.duplicate = True
                note("capture recorded as a duplicate")
                return
            order.status, order.paid_by = "paid", payment.id
            note("order paid")
            for other_id in order.payments:
                other = self.payment_model[other_id]
                if other.status == "pending":
                    other.status = "closed"

        def _fail(self, payment: PaymentModel) -> None:
            if payment.status == "pending":
                payment.status = "failed"

        def _confirm(self, payment: PaymentModel, outcome: str, notify: bool) -> None:
            """The test gateway's buyer settles the trade; its notification may be lost."""
            response = self._post(
                f"/sandbox/test/payments/{payment.id}/confirm",
                {"outcome": outcome, "notify": notify},
                auth=False,
            )
            if payment.gateway == "waiting":
                payment.gateway = SETTLED[outcome]
            if payment.gateway == "closed":
                # Closed with its order: it can no longer be paid (409), or, settled silently,
                # it stays closed.
                if response.status_code == 409:
                    assert _code(response) in ("trade_closed", "trade_not_settled"), response.text
                else:
                    assert not notify, response.text
                    assert self._expect(response, 200)["gateway_status"] == "closed"
                note("confirm of a closed trade")
                return
            body = self._expect(response, 200)
            assert body["gateway_status"] == payment.gateway, body
            if not notify:
                assert body["notification"] is None, body
                note("notification lost")
                return
            if payment.gateway in payment.notified:
                assert body["notification"] == "duplicate", body
                note("notification replayed")
                return
            assert body["notification"] == "processed", body
            payment.notified.add(payment.gateway)
            if payment.gateway == "paid":
                self._capture(payment)
            else:
                self._fail(payment)

        def _pay(self, order: OrderModel, outcome: str) -> Any:
            response = self._post(
                f"/v1/orders/{order.id}/payments", {"channel": "test", "test_outcome": outcome}
            )
            if order.status in CAPTURED:
                self._expect(response, 409, "order_already_paid")
                return multiple()
            if order.status != "created":
                self._expect(response, 409, "order_not_payable")
                return multiple()
            if order.expires_at <= clock.now():
                self._expect(response, 409, "order_expired")
                note("expired order refused an attempt")
                return multiple()
            body = self._expect(response, 201)
            note(f"attempt opened {outcome}")
            payment = PaymentModel(
                id=body["id"], order_id=order.id, gateway=OPENED[outcome], status="pending"
            )
            self.payment_model[payment.id] = payment
            order.payments.append(payment.id)
            if outcome == "succeeded":
                self._capture(payment)
            elif outcome == "failed":
                self._fail(payment)
            assert (body["status"], body["is_duplicate"]) == (payment.status, payment.duplicate)
            return payment.id

        def _close(self, order: OrderModel) -> None:
            response = self._post(f"/v1/orders/{order.id}/close", {})
            if order.status in CAPTURED:
                self._expect(response, 409, "order_already_paid")
                return
            if order.status == "closed":
                assert self._expect(response, 200)["status"] == "closed"
                return
            pending = sorted(p for p in order.payments if self.payment_model[p].status == "pending")
            for payment_id in pending:  # knowpay closes them at the gateway in id order
                payment = self.payment_model[payment_id]
                if payment.gateway == "waiting":
                    payment.gateway = "closed"
                if payment.gateway == "paid":
                    self._capture(payment)
                    note("close found a lost capture")
                    self._expect(response, 409, "order_already_paid")
                    return
                payment.status = "closed"
            order.status = "closed"
            note("order closed")
            assert self._expect(response, 200)["status"] == "closed"

        # What the rules may pick -------------------------------------------------------------
        # In creation order, never sorted by id: ids are random, and a replayed example must
        # pick the same objects from the same draws.

        def _open_orders(self) -> list[str]:
            now = clock.now()
            return [
                o.id
                for o in self.order_model.values()
                if o.status == "created" and o.expires_at > now
            ]

        def _payable(self) -> list[str]:
            return [
                o for o in self._open_orders() if len(self.order_model[o].payments) < MAX_ATTEMPTS
            ]

        def _payable_twice(self) -> list[str]:
            return [
                o
                for o in self._open_orders()
                if len(self.order_model[o].payments) <= MAX_ATTEMPTS - 2
            ]

        def _closable(self) -> list[str]:
            return [o.id for o in self.order_model.values() if o.status == "created" and o.payments]

        def _expirable(self) -> list[str]:
            return [o for o in self._open_orders() if self.order_model[o].payments]

        def _waiting(self, *, order_unpaid: bool) -> list[str]:
            """Attempts whose trade waits for the buyer, of unpaid orders or of orders
            already paid or closed."""
            return [
                p.id
                for p in self.payment_model.values()
                if p.gateway == "waiting"
                and (self.order_model[p.order_id].status == "created") is order_unpaid
            ]

        def _notified(self) -> list[str]:
            return [p.id for p in self.payment_model.values() if p.notified]

        # Rules -------------------------------------------------------------------------------

        @precondition(
            lambda self: (
                len(self.order_model) < MAX_ORDERS and len(self._open_orders()) < MAX_OPEN_ORDERS
            )
        )
        @rule(
            target=orders,
            buyer=st.sampled_from(range(BUYERS)),
            lines=st.lists(
                st.tuples(st.sampled_from(sorted(PRODUCTS)), st.integers(1, 2)),
                min_size=1,
                max_size=2,
                unique_by=lambda line: line[0],
            ),
            expires_in=st.sampled_from([60, 600, 1800]),
        )
        def create_order(self, buyer: int, lines: list[tuple[str, int]], expires_in: int) -> str:
            """An order of one or two products (memberships among them) for one of the
            buyers; `lines` names products by title."""
            user_id = shop.buyers[buyer].id
            products = [(shop.products[title], qty) for title, qty in lines]
            items = [{"product_id": product["id"], "quantity": qty} for product, qty in products]
            response = self._post(
                "/v1/orders",
                {"user_id": user_id, "currency": "CNY", "items": items, "expires_in": expires_in},
            )
            body = self._expect(response, 201)
            assert body["status"] == "created"
            assert body["amount"] == sum(p["prices"][0]["amount"] * qty for p, qty in products)
            order_id: str = body["id"]
            self.order_model[order_id] = OrderModel(
                id=order_id,
                user_id=user_id,
                expires_at=datetime.fromisoformat(body["expires_at"]),
            )
            return order_id

        @precondition(lambda self: self._payable())
        @rule(
            target=payments,
            data=st.data(),
            outcome=st.sampled_from(["pending", "pending", "succeeded", "failed"]),
        )
        def pay_open_order(self, data: st.DataObject, outcome: str) -> Any:
            """Start an attempt on an order that can still be paid."""
            return self._pay(self.order_model[data.draw(st.sampled_from(self._payable()))], outcome)

        @precondition(lambda self: self._payable_twice())
        @rule(target=payments, data=st.data())
        def buyer_pays_twice(self, data: st.DataObject) -> Any:
            """The buyer opens two attempts (two browser tabs) and pays both; either
            notification may be lost. Whichever capture knowpay learns of second is owed
            back."""
            order = self.order_model[data.draw(st.sampled_from(self._payable_twice()))]
            first, second = self._pay(order, "pending"), self._pay(order, "pending")
            for payment_id in (first, second):
                self._confirm(self.payment_model[payment_id], "succeeded", data.draw(st.booleans()))
            return multiple(first, second)

        @rule(target=payments, order_id=orders, outcome=st.sampled_from(["pending", "succeeded"]))
        def pay_any_order(self, order_id: str, outcome: str) -> Any:
            """Start an attempt on any order: paid, closed and expired ones refuse (409)."""
            return self._pay(self.order_model[order_id], outcome)

        @precondition(lambda self: self._waiting(order_unpaid=True))
        @rule(data=st.data())
        def buyer_settles(self, data: st.DataObject) -> None:
            """The buyer pays or fails a waiting trade of an unpaid order; the notification
            may be lost."""
            chosen = data.draw(st.sampled_from(self._waiting(order_unpaid=True)))
            outcome = data.draw(st.sampled_from(["succeeded", "succeeded", "failed"]))
            self._confirm(self.payment_model[chosen], outcome, notify=data.draw(st.booleans()))

        @rule(
            payment_id=payments,
            outcome=st.sampled_from(["succeeded", "failed"]),
            notify=st.booleans(),
        )
        def confirm(self, payment_id: str, outcome: str, notify: bool) -> None:
            """Confirm any attempt at the gateway, settled or not."""
            self._confirm(self.payment_model[payment_id], outcome, notify)

        @precondition(lambda self: self._notified())
        @rule(data=st.data(), outcome=st.sampled_from(["succeeded", "failed"]))
        def replay_notification(self, data: st.DataObject, outcome: str) -> None:
            """The gateway delivers a notification again (asked for either outcome: a settled
            trade does not change)."""
            payment = self.payment_model[data.draw(st.sampled_from(self._notified()))]
            self._confirm(payment, outcome, notify=True)

        @precondition(lambda self: self._waiting(order_unpaid=False))
        @rule(data=st.data())
        def confirm_late(self, data: st.DataObject) -> None:
            """The buyer pays a waiting attempt of an order already paid or closed: knowpay
            records the money as a duplicate, owed back."""
            chosen = data.draw(st.sampled_from(self._waiting(order_unpaid=False)))
            payment = self.payment_model[chosen]
            self._confirm(payment, "succeeded", notify=True)
            assert payment.status == "succeeded"
            assert payment.duplicate
            response = client.get(f"/v1/payments/{payment.id}", headers=shop.app.headers)
            read = self._expect(response, 200)
            assert (read["status"], read["is_duplicate"]) == ("succeeded", True), read

        @rule(payment_id=payments)
        def sync_payment(self, payment_id: str) -> None:
            """Ask the gateway (active query) and record what it says."""
            payment = self.payment_model[payment_id]
            response = self._post(f"/v1/payments/{payment_id}/sync", {})
            if payment.gateway == "paid":
                if payment.status != "succeeded":
                    note("sync found a lost capture")
                self._capture(payment)
            elif payment.gateway == "failed":
                self._fail(payment)
            body = self._expect(response, 200)
            assert (body["status"], body["is_duplicate"]) == (payment.status, payment.duplicate)

        @precondition(lambda self: self._closable())
        @rule(data=st.data())
        def close_order(self, data: st.DataObject) -> None:
            """Close an unpaid order with attempts, closing them at the gateway (where one may
            turn out paid: then the order is paid instead, 409). Closing it again gives the
            same answer: 200 closed, or 409 paid."""
            order = self.order_model[data.draw(st.sampled_from(self._closable()))]
            self._close(order)
            self._close(order)

        @precondition(lambda self: self._expirable())
        @rule(data=st.data())
        def expire(self, data: st.DataObject) -> None:
            """Time passes beyond an order's expiry: no new attempt is accepted for it."""
            order = self.order_model[data.draw(st.sampled_from(self._expirable()))]
            clock.advance(order.expires_at - clock.now() + timedelta(seconds=1))
            self._pay(order, "pending")  # 409 order_expired

        # Invariants --------------------------------------------------------------------------

        @invariant()
        def money_invariants(self) -> None:
            with database.session_scope(read_only=True) as session:
                assert integrity.check(session) == []
                orders = {
                    row.id: row
                    for row in session.execute(
                        select(Order.id, Order.status, Order.paid_payment_id, Order.user_id)
                    )
                }
                payments = {
                    row.id: row
                    for row in session.execute(
                        select(Payment.id, Payment.order_id, Payment.status, Payment.is_duplicate)
                    )
                }
                items: dict[str, list[str]] = defaultdict(list)
                for order_id, product_id in session.execute(
                    select(OrderItem.order_id, OrderItem.product_id)
                ):
                    items[order_id].append(product_id)
                events: Counter[tuple[str, str]] = Counter(
                    {
                        (row.stream_key, row.type): row.n
                        for row in session.execute(
                            select(
                                OutboxEvent.stream_key, OutboxEvent.type, func.count().label("n")
                            ).group_by(OutboxEvent.stream_key, OutboxEvent.type)
                        )
                    }
                )
                entitled = {
                    (row.user_id, row.product_id)
                    for row in session.execute(select(Entitlement.user_id, Entitlement.product_id))
                }
                grants = [
                    (row.order_id, row.payment_id)
                    for row in session.execute(
                        select(EntitlementGrant.order_id, EntitlementGrant.payment_id)
                    )
                ]
            self._check_orders(orders, payments, items, events)
            self._check_entitlements(orders, items, entitled, grants)
            self._check_model(orders, payments)

        def _check_orders(
            self,
            orders: dict[str, Any],
            payments: dict[str, Any],
            items: dict[str, list[str]],
            events: Counter[tuple[str, str]],
        ) -> None:
            succeeded: dict[str, list[str]] = defaultdict(list)
            duplicates: dict[str, list[str]] = defaultdict(list)
            for payment in payments.values():
                if payment.is_duplicate:
                    assert payment.status == "succeeded", payment
                    duplicates[payment.order_id].append(payment.id)
                elif payment.status == "succeeded":
                    succeeded[payment.order_id].append(payment.id)
            for order in orders.values():
                assert order.status in ORDER_STATUSES, order
                previous = self.seen_status.get(order.id)
                if previous is not None:
                    assert order.status in ALLOWED_NEXT[previous], (previous, order)
                self.seen_status[order.id] = order.status
                paid = order.status in CAPTURED
                # Paid iff exactly one non-duplicate succeeded payment, the one it names.
                assert len(succeeded[order.id]) <= 1, (order, succeeded[order.id])
                if paid:
                    assert succeeded[order.id] == [order.paid_payment_id], order
                else:
                    assert succeeded[order.id] == [], order
                    assert order.paid_payment_id is None, order
                for duplicate_id in duplicates[order.id]:
                    assert order.status != "created", (order, duplicate_id)
                    assert duplicate_id != order.paid_payment_id, order
                # Each change of money emitted its events, once.
                assert events[order.id, "order.paid"] == (1 if paid else 0), order
                assert events[order.id, "order.closed"] == (order.status == "closed"), order
                captures = len(succeeded[order.id]) + len(duplicates[order.id])
                assert events[order.id, "payment.succeeded"] == captures, order
                assert events[order.id, "payment.duplicate_detected"] == len(
                    duplicates[order.id]
                ), order
                granted = len(items[order.id]) if paid else 0
                assert events[order.id, "entitlement.granted"] == granted, order

        def _check_entitlements(
            self,
            orders: dict[str, Any],
            items: dict[str, list[str]],
            entitled: set[tuple[str, str]],
            grants: list[tuple[str, str]],
        ) -> None:
            # Access exactly for what was bought and paid for, granted by the paying payment.
            bought = {
                (order.user_id, product_id)
                for order in orders.values()
                if order.status in CAPTURED
                for product_id in items[order.id]
            }
            assert entitled == bought
            for order_id, payment_id in grants:
                order = orders[order_id]
                assert order.status in CAPTURED, order
                assert payment_id == order.paid_payment_id, (order, payment_id)
            granted = Counter(order_id for order_id, _ in grants)
            for order in orders.values():
                expected = len(items[order.id]) if order.status in CAPTURED else 0
                assert granted[order.id] == expected, order

        def _check_model(self, orders: dict[str, Any], payments: dict[str, Any]) -> None:
            for order in self.order_model.values():
                row = orders[order.id]
                assert (row.status, row.paid_payment_id) == (order.status, order.paid_by), (
                    order,
                    row,
                )
            for payment in self.payment_model.values():
                row = payments[payment.id]
                assert (row.status, row.is_duplicate) == (payment.status, payment.duplicate), (
                    payment,
                    row,
                )
            mine = {p.id for p in payments.values() if p.order_id in self.order_model}
            assert mine == set(self.payment_model)

    return PaymentMachine


def test_payments_keep_the_money_invariants(
    client: TestClient, build: Builders, clock: FrozenClock, database: Database
) -> None:
    shop = _open_shop(build)
    snapshot = Snapshot(database)
    seen: Counter[str] = Counter()
    machine = _machine(client, database, clock, shop, snapshot, seen)
    try:
        run_state_machine_as_test(
            machine,
            settings=hypothesis.settings(
                max_examples=MAX_EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                # On a failure: shrink the first bug found, and skip the slow explain phase.
                report_multiple_bugs=False,
                phases=[phase for phase in Phase if phase is not Phase.explain],
                suppress_health_check=[
                    HealthCheck.function_scoped_fixture,
                    HealthCheck.too_slow,
                    HealthCheck.filter_too_much,
                ],
            ),
        )
    finally:
        snapshot.close()
    # The machine got somewhere (orders are paid dozens of times in a run).
    assert seen["order paid"], seen
