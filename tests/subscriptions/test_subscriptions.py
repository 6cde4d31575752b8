"""Memberships renewed from the wallet: subscribing, renewals, dunning, cancellation, and
the books agreeing at every step."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.subscriptions import service
from knowpay.subscriptions.tasks import RenewalContext, renew_subscriptions
from tests import books
from tests.builders import Builders, Caller, Shop

PASSWORD = "246810"
PRICE = 3000
HOUR = timedelta(hours=1)


class MemberShop(Shop):
    """A shop selling a 30-day membership, whose buyer has a payment password and coins.
    Its job sends no reminders unless asked (their own tests count them)."""

    def __init__(
        self, build: Builders, app: FastAPI, coins: int = 10_000, reminders: bool = False
    ) -> None:
        super().__init__(build)
        self.clock = build.clock
        self.membership = build.product(
            self.app,
            title="Membership",
            kind="membership",
            period_days=30,
            prices=[{"amount": PRICE, "currency": "CNY"}],
        )
        context: service.SubscriptionsContext = app.state.subscriptions_context
        if not reminders:
            quiet = context.policy.model_copy(update={"remind_before_s": 0})
            context = dataclasses.replace(context, policy=quiet)
        self.renewals = RenewalContext(
            database=build.database, clock=build.clock, subscriptions=context
        )
        response = self.client.put(
            "/v1/users/me/payment-password",
            json={"new_password": PASSWORD},
            headers=self.buyer.headers,
        )
        assert response.status_code == 200, response.text
        if coins:
            self.top_up(coins)

    def top_up(self, amount: int) -> None:
        response = self.client.post(
            "/v1/wallet/top-ups",
            json={"user_id": self.buyer.id, "amount": amount, "currency": "CNY"},
            headers=self.app.headers,
        )
        assert response.status_code == 201, response.text
        self.confirm(self.pay(response.json()))

    def subscribe(self, caller: Caller | None = None, **fields: Any) -> Any:
        body: dict[str, Any] = {
            "product_id": self.membership["id"],
            "currency": "CNY",
            "payment_password": PASSWORD,
            **fields,
        }
        if caller is None:
            body.setdefault("user_id", self.buyer.id)
        return self.client.post(
            "/v1/subscriptions", json=body, headers=(caller or self.app).headers
        )

    def subscribed(self) -> dict[str, Any]:
        response = self.subscribe()
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def balance(self) -> int:
        [balance] = self.get(f"/v1/wallet?user_id={self.buyer.id}")["balances"]
        amount: int = balance["amount"]
        return amount

    def access_until(self) -> datetime | None:
        [entitlement] = [
            e
            for e in books.entitlements(self.build.database, self.buyer.id)
            if e.product_id == self.membership["id"]
        ]
        return entitlement.valid_until

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.get(f"/v1/subscriptions/{subscription_id}")

    def at(self, moment: str) -> None:
        """The clock moves to an RFC 3339 time the API answered."""
        target = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        self.clock.advance(target - self.clock.now())

    def run_job(self) -> dict[str, int]:
        return renew_subscriptions(self.renewals)


@pytest.fixture
def shop(build: Builders, app: FastAPI) -> MemberShop:
    return MemberShop(build, app)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_subscribing_pays_the_first_period_from_the_wallet(
    shop: MemberShop, database: Database, clock: FrozenClock
) -> None:
    subscription = shop.subscribed()
    assert subscription["status"] == "active"
    assert (subscription["amount"], subscription["currency"]) == (PRICE, "CNY")
    assert shop.balance() == 10_000 - PRICE
    end = clock.now() + timedelta(days=30)
    assert shop.access_until() == end
    assert _moment(subscription["current_period_end"]) == end
    assert _moment(subscription["next_attempt_at"]) == end - HOUR
    order = shop.get(f"/v1/orders/{subscription['latest_order_id']}")
    assert order["status"] == "paid"
    assert order["metadata"] == {"subscription_id": subscription["id"]}
    assert [e["type"] for e in books.events(database, stream_key=subscription["id"])] == [
        "subscription.created"
    ]
    assert books.violations(database) == []


def test_a_buyer_subscribes_themself(shop: MemberShop) -> None:
    response = shop.subscribe(caller=shop.buyer)
    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == shop.buyer.id
    listed = shop.client.get("/v1/subscriptions", headers=shop.buyer.headers).json()["data"]
    assert [s["id"] for s in listed] == [response.json()["id"]]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"payment_password": "000000"}, 403, "payment_password_incorrect"),
        ({"currency": "USD"}, 422, "price_not_available"),
        ({"payment_password": "12345"}, 422, "validation_error"),
    ],
)
def test_a_refused_subscription_changes_nothing(
    shop: MemberShop, database: Database, fields: dict[str, Any], status: int, code: str
) -> None:
    response = shop.subscribe(**fields)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert shop.get("/v1/subscriptions")["data"] == []
    assert shop.balance() == 10_000
    assert [o["kind"] for o in shop.get("/v1/orders")["data"]] == ["top_up"]


def test_too_few_coins_for_the_first_period_is_402_and_changes_nothing(
    build: Builders, app: FastAPI
) -> None:
    shop = MemberShop(build, app, coins=PRICE - 1)
    response = shop.subscribe()
    assert (response.status_code, response.json()["code"]) == (402, "insufficient_balance")
    assert shop.get("/v1/subscriptions")["data"] == []
    assert shop.balance() == PRICE - 1
    assert [o["kind"] for o in shop.get("/v1/orders")["data"]] == ["top_up"]


def test_only_a_membership_with_a_period_is_subscribed(shop: MemberShop) -> None:
    response = shop.subscribe(product_id=shop.course["id"])
    assert (response.status_code, response.json()["code"]) == (422, "product_not_subscribable")


def test_a_second_live_subscription_to_one_product_is_409(shop: MemberShop) -> None:
    shop.subscribed()
    again = shop.subscribe()
    assert (again.status_code, again.json()["code"]) == (409, "subscription_exists")
    assert shop.balance() == 10_000 - PRICE


def test_holding_the_membership_the_first_renewal_falls_at_its_end(
    shop: MemberShop, clock: FrozenClock
) -> None:
    bought = shop.order(shop.membership)
    shop.confirm(shop.pay(bought))
    subscription = shop.subscribed()
    assert shop.balance() == 10_000  # nothing charged now
    end = clock.now() + timedelta(days=30)
    assert _moment(subscription["current_period_end"]) == end
    assert _moment(subscription["next_attempt_at"]) == end - HOUR
    assert subscription["latest_order_id"] is None


def test_a_renewal_charges_the_wallet_and_the_access_runs_on_without_a_gap(
    shop: MemberShop, database: Database
) -> None:
    subscription = shop.subscribed()
    first_end = shop.access_until()
    assert first_end is not None
    assert shop.run_job() == {}  # not due yet
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    assert shop.run_job() == {}  # once
    assert shop.balance() == 10_000 - 2 * PRICE
    assert shop.access_until() == first_end + timedelta(days=30)
    renewed = shop.subscription(subscription["id"])
    assert (renewed["status"], renewed["renewals"]) == ("active", 1)
    assert _moment(renewed["current_period_end"]) == first_end + timedelta(days=30)
    assert renewed["latest_order_id"] != subscription["latest_order_id"]
    assert shop.get(f"/v1/orders/{renewed['latest_order_id']}")["status"] == "paid"
    assert [e["type"] for e in books.events(database, stream_key=subscription["id"])] == [
        "subscription.created",
        "subscription.renewed",
    ]
    assert books.violations(database) == []


def test_a_failed_renewal_is_retried_and_renews_once_the_coins_are_there(
    build: Builders, app: FastAPI, database: Database, clock: FrozenClock
) -> None:
    shop = MemberShop(build, app, coins=PRICE + 500)
    subscription = shop.subscribed()
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"failed": 1}
    failing = shop.subscription(subscription["id"])
    assert (failing["status"], failing["failed_attempts"]) == ("past_due", 1)
    assert failing["last_failure_code"] == "insufficient_balance"
    assert _moment(failing["next_attempt_at"]) == clock.now() + timedelta(days=1)
    renewal_order = shop.get(f"/v1/orders/{failing['latest_order_id']}")
    assert renewal_order["status"] == "created"  # payable at the cashier meanwhile
    [failed_event] = books.events(database, "subscription.payment_failed")
    assert failed_event["data"]["object"]["latest_order_id"] == renewal_order["id"]
    assert shop.balance() == 500

    shop.top_up(PRICE)
    shop.at(failing["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    renewed = shop.subscription(subscription["id"])
    assert (renewed["status"], renewed["failed_attempts"], renewed["renewals"]) == (
        "active",
        0,
        1,
    )
    # The same order was charged: the one the buyer could have paid meanwhile.
    assert renewed["latest_order_id"] == renewal_order["id"]
    assert shop.get(f"/v1/orders/{renewal_order['id']}")["status"] == "paid"
    assert shop.balance() == 500
    # The access had lapsed for a day: the new period starts from the payment.
    assert shop.access_until() == clock.now() + timedelta(days=30)
    assert books.violations(database) == []


def test_when_every_try_fails_the_subscription_is_canceled(
    build: Builders, app: FastAPI, database: Database
) -> None:
    shop = MemberShop(build, app, coins=PRICE)
    subscription = shop.subscribed()
    end = shop.access_until()
    shop.at(subscription["next_attempt_at"])
    outcomes = [shop.run_job()]
    for _ in range(3):
        shop.at(shop.subscription(subscription["id"])["next_attempt_at"])
        outcomes.append(shop.run_job())
    assert outcomes == [{"failed": 1}, {"failed": 1}, {"failed": 1}, {"canceled": 1}]
    ended = shop.subscription(subscription["id"])
    assert (ended["status"], ended["cancel_reason"]) == ("canceled", "payment_failed")
    assert ended["next_attempt_at"] is None
    assert shop.access_until() == end
    assert shop.run_job() == {}
    types = [e["type"] for e in books.events(database, stream_key=subscription["id"])]
    assert types[-1] == "subscription.canceled"
    # Ended, the product is free to subscribe to again.
    shop.top_up(PRICE)
    assert shop.subscribe().status_code == 201


def test_a_renewal_order_paid_at_the_cashier_renews_without_charging_the_wallet(
    build: Builders, app: FastAPI, database: Database
) -> None:
    shop = MemberShop(build, app, coins=PRICE)
    subscription = shop.subscribed()
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"failed": 1}
    failing = shop.subscription(subscription["id"])
    shop.confirm(shop.pay({"id": failing["latest_order_id"]}))  # through a gateway
    assert shop.run_job() == {"renewed": 1}  # at once, not at the next try's time
    renewed = shop.subscription(subscription["id"])
    assert (renewed["status"], renewed["renewals"]) == ("active", 1)
    assert shop.balance() == 0
    assert books.violations(database) == []


def test_a_subscription_canceled_at_period_end_stays_active_then_ends_without_a_charge(
    shop: MemberShop, database: Database
) -> None:
    subscription = shop.subscribed()
    response = shop.client.post(
        f"/v1/subscriptions/{subscription['id']}/cancel", headers=shop.buyer.headers
    )
    assert response.status_code == 200, response.text
    canceling = response.json()
    assert (canceling["status"], canceling["cancel_at_period_end"]) == ("active", True)
    assert canceling["next_attempt_at"] == canceling["current_period_end"]
    shop.at(subscription["next_attempt_at"])  # the renewal's time passes without a charge
    assert shop.run_job() == {}
    shop.at(canceling["current_period_end"])
    assert shop.run_job() == {"canceled": 1}
    ended = shop.subscription(subscription["id"])
    assert (ended["status"], ended["cancel_reason"]) == ("canceled", "requested")
    assert shop.balance() == 10_000 - PRICE
    assert [e["type"] for e in books.events(database, stream_key=subscription["id"])] == [
        "subscription.created",
        "subscription.updated",
        "subscription.canceled",
    ]


def test_resuming_before_the_end_keeps_the_renewals(shop: MemberShop) -> None:
    subscription = shop.subscribed()
    path = f"/v1/subscriptions/{subscription['id']}"
    shop.client.post(f"{path}/cancel", headers=shop.app.headers).raise_for_status()
    response = shop.client.post(f"{path}/resume", headers=shop.app.headers)
    assert response.status_code == 200, response.text
    assert response.json()["cancel_at_period_end"] is False
    assert response.json()["next_attempt_at"] == subscription["next_attempt_at"]
    again = shop.client.post(f"{path}/resume", headers=shop.app.headers)
    assert (again.status_code, again.json()["code"]) == (409, "subscription_not_changeable")
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}


def test_canceling_now_ends_it_and_keeps_the_period_paid_for(shop: MemberShop) -> None:
    subscription = shop.subscribed()
    end = shop.access_until()
    path = f"/v1/subscriptions/{subscription['id']}"
    response = shop.client.post(
        f"{path}/cancel", json={"at_period_end": False}, headers=shop.app.headers
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["cancel_reason"]) == (
        "canceled",
        "requested",
    )
    assert shop.access_until() == end
    for action in ("cancel", "resume"):
        refused = shop.client.post(f"{path}/{action}", headers=shop.app.headers)
        assert (refused.status_code, refused.json()["code"]) == (409, "subscription_not_changeable")
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {}
    assert shop.balance() == 10_000 - PRICE


def test_a_higher_price_is_not_charged_and_ends_the_subscription(shop: MemberShop) -> None:
    subscription = shop.subscribed()
    raised = shop.client.patch(
        f"/v1/products/{shop.membership['id']}",
        json={"prices": [{"amount": PRICE + 1, "currency": "CNY"}]},
        headers=shop.app.headers,
    )
    assert raised.status_code == 200, raised.text
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"canceled": 1}
    ended = shop.subscription(subscription["id"])
    assert (ended["status"], ended["cancel_reason"]) == ("canceled", "price_increased")
    assert shop.balance() == 10_000 - PRICE


def test_a_lower_price_is_what_the_renewal_charges(shop: MemberShop) -> None:
    subscription = shop.subscribed()
    lowered = shop.client.patch(
        f"/v1/products/{shop.membership['id']}",
        json={"prices": [{"amount": PRICE - 1000, "currency": "CNY"}]},
        headers=shop.app.headers,
    )
    assert lowered.status_code == 200, lowered.text
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    assert shop.balance() == 10_000 - PRICE - (PRICE - 1000)


def test_a_membership_bought_again_by_hand_moves_the_renewal(
    shop: MemberShop, clock: FrozenClock
) -> None:
    subscription = shop.subscribed()
    bought = shop.order(shop.membership)
    shop.confirm(shop.pay(bought))
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"followed": 1}  # nothing to charge
    moved = shop.subscription(subscription["id"])
    end = _moment(subscription["current_period_end"]) + timedelta(days=30)
    assert _moment(moved["current_period_end"]) == end
    assert _moment(moved["next_attempt_at"]) == end - HOUR
    assert shop.balance() == 10_000 - PRICE


def test_a_renewal_that_fails_mid_way_leaves_nothing_and_is_renewed_once_later(
    shop: MemberShop, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscription = shop.subscribed()
    shop.at(subscription["next_attempt_at"])

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process dies before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(service, "_follow", crash)  # after the charge, before the commit
        assert shop.run_job() == {"error": 1}
    assert shop.balance() == 10_000 - PRICE
    assert len(shop.get("/v1/orders?kind=purchase")["data"]) == 1
    # Put back an hour, behind the subscriptions that work; then renewed once.
    postponed = shop.subscription(subscription["id"])
    assert _moment(postponed["next_attempt_at"]) == clock.now() + HOUR
    assert shop.run_job() == {}
    shop.at(postponed["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    assert shop.balance() == 10_000 - 2 * PRICE
    assert books.violations(database) == []


def test_others_cannot_see_or_cancel_a_subscription(shop: MemberShop, build: Builders) -> None:
    subscription = shop.subscribed()
    stranger_app = build.app("other")
    stranger = build.buyer(shop.app)
    path = f"/v1/subscriptions/{subscription['id']}"
    for caller in (stranger_app, stranger):
        assert shop.client.get(path, headers=caller.headers).status_code == 404
        refused = shop.client.post(f"{path}/cancel", headers=caller.headers)
        assert (refused.status_code, refused.json()["code"]) == (404, "subscription_not_found")
        listed = shop.client.get("/v1/subscriptions", headers=caller.headers).json()["data"]
        assert listed == []
    foreign = shop.subscribe(caller=stranger_app, user_id=shop.buyer.id)
    assert (foreign.status_code, foreign.json()["code"]) == (422, "user_not_found")
    theirs = shop.subscribe(caller=stranger, user_id=shop.buyer.id)
    assert (theirs.status_code, theirs.json()["code"]) == (422, "user_not_found")
    assert shop.subscription(subscription["id"])["status"] == "active"


def test_two_subscribes_that_both_pass_the_check_make_one_subscription(
    shop: MemberShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As two requests at once would: each reads "no live subscription" before either inserts.
    monkeypatch.setattr(service.repository, "live_one", lambda *args: None)
    shop.subscribed()
    again = shop.subscribe()
    assert (again.status_code, again.json()["code"]) == (409, "subscription_exists")
    assert shop.balance() == 10_000 - PRICE
    assert len(shop.get("/v1/subscriptions")["data"]) == 1


def test_webhook_endpoints_may_listen_to_subscription_events(shop: MemberShop) -> None:
    response = shop.client.post(
        "/v1/webhook-endpoints",
        json={
            "url": "https://hooks.example.com/knowpay",
            "events": ["subscription.renewed", "subscription.payment_failed"],
        },
        headers=shop.app.headers,
    )
    assert response.status_code == 201, response.text


def test_the_app_hears_of_each_renewal_five_days_before_it_is_charged(
    build: Builders, app: FastAPI, database: Database, clock: FrozenClock
) -> None:
    shop = MemberShop(build, app, reminders=True)
    subscription = shop.subscribed()
    charge_at = _moment(subscription["next_attempt_at"])
    clock.advance(charge_at - timedelta(days=5, seconds=1) - clock.now())
    assert shop.run_job() == {}
    clock.advance(timedelta(seconds=1))
    assert shop.run_job() == {"reminded": 1}
    assert shop.run_job() == {}  # once a period
    [reminder] = books.events(database, "subscription.renewal_upcoming")
    assert reminder["data"]["object"]["next_attempt_at"] == subscription["next_attempt_at"]
    assert reminder["data"]["object"]["amount"] == PRICE
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    renewed = shop.subscription(subscription["id"])
    shop.at(renewed["next_attempt_at"])
    assert shop.run_job() == {"reminded": 1, "renewed": 1}  # the next period's, late
    assert len(books.events(database, "subscription.renewal_upcoming")) == 2


def test_a_subscription_set_to_end_gets_no_reminder(build: Builders, app: FastAPI) -> None:
    shop = MemberShop(build, app, reminders=True)
    subscription = shop.subscribed()
    shop.client.post(
        f"/v1/subscriptions/{subscription['id']}/cancel", headers=shop.app.headers
    ).raise_for_status()
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {}


def test_a_subscription_past_its_end_cannot_be_resumed(shop: MemberShop) -> None:
    subscription = shop.subscribed()
    path = f"/v1/subscriptions/{subscription['id']}"
    shop.client.post(f"{path}/cancel", headers=shop.app.headers).raise_for_status()
    shop.at(subscription["current_period_end"])  # ended; the job has not run yet
    refused = shop.client.post(f"{path}/resume", headers=shop.app.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "subscription_not_changeable")
    assert shop.run_job() == {"canceled": 1}
    assert shop.balance() == 10_000 - PRICE


def test_cancels_and_resumes_are_in_the_audit_log(shop: MemberShop, build: Builders) -> None:
    subscription = shop.subscribed()
    path = f"/v1/subscriptions/{subscription['id']}"
    support = build.staff(Role.SUPPORT)
    shop.client.post(f"{path}/cancel", headers=shop.buyer.headers).raise_for_status()
    shop.client.post(f"{path}/resume", headers=shop.app.headers).raise_for_status()
    shop.client.post(
        f"{path}/cancel", json={"at_period_end": False}, headers=support.headers
    ).raise_for_status()
    admin = build.staff(Role.ADMIN)
    response = shop.client.get(
        "/v1/admin/audit", params={"object_id": subscription["id"]}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    records = sorted(response.json()["data"], key=lambda r: r["id"])
    assert [(r["action"], r["actor"], r["before"], r["after"]) for r in records] == [
        ("subscription.canceled", f"buyer:{shop.buyer.id}", {"status": "active"},
         {"status": "canceling"}),
        ("subscription.resumed", f"app:{shop.app.id}", {"status": "canceling"},
         {"status": "active"}),
        ("subscription.canceled", f"staff:{support.id}", {"status": "active"},
         {"status": "canceled"}),
    ]  # fmt: skip
