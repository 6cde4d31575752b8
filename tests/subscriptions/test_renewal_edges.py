"""Renewals at the edges, each found by an outside audit and failing before its fix: races
with the buyer's own payments, order numbers, refusals of every kind, changed terms, the
dunning order's life and the lead time."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from knowpay.kit.db import Database
from knowpay.payments import tasks as payment_tasks
from knowpay.subscriptions import service
from tests import books
from tests.builders import Builders
from tests.subscriptions.test_subscriptions import PRICE, MemberShop


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _with_policy(shop: MemberShop, **changes: Any) -> None:
    context = shop.renewals.subscriptions
    policy = context.policy.model_copy(update=changes)
    shop.renewals = dataclasses.replace(
        shop.renewals, subscriptions=dataclasses.replace(context, policy=policy)
    )


def _failing(shop: MemberShop) -> tuple[dict[str, Any], dict[str, Any]]:
    """A subscription whose first renewal failed (the wallet held one period only)."""
    subscription = shop.subscribed()
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"failed": 1}
    return subscription, shop.subscription(subscription["id"])


@pytest.mark.postgres_only
def test_a_purchase_by_hand_racing_a_renewal_keeps_both_periods(
    build: Builders, app: FastAPI, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renewal read the membership before the buyer's own purchase of it committed; the
    renewal's grant used to extend that stale copy, losing the purchase's 30 days."""
    if database.dialect != "postgresql":
        pytest.skip("a commit between two reads of one transaction: PostgreSQL")
    shop = MemberShop(build, app)
    subscription = shop.subscribed()
    end = shop.access_until()
    assert end is not None
    bought = shop.order(shop.membership)
    payment = shop.pay(bought)
    real_find = service.entitlements.find

    def find_then_buyer_pays(*args: Any) -> Any:
        found = real_find(*args)
        monkeypatch.setattr(service.entitlements, "find", real_find)
        shop.confirm(payment)  # commits in its own transaction, as another process would
        return found

    monkeypatch.setattr(service.entitlements, "find", find_then_buyer_pays)
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    assert shop.access_until() == end + timedelta(days=60)  # both periods paid for
    assert books.violations(database) == []


@pytest.mark.postgres_only
def test_a_cashier_payment_waiting_on_a_renewal_becomes_a_refunded_duplicate(
    build: Builders, app: FastAPI, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The buyer pays the failing renewal's order at the cashier while the worker charges it
    from the wallet: the order is paid once, the other payment is a duplicate refunded."""
    if database.dialect != "postgresql":
        pytest.skip("row locks held across connections: PostgreSQL")
    shop = MemberShop(build, app, coins=PRICE)
    subscription, failing = _failing(shop)
    end = shop.access_until()
    assert end is not None
    shop.top_up(PRICE)
    payment = shop.pay({"id": failing["latest_order_id"]})
    real_lock = service._failing_order
    confirmed: list[dict[str, Any]] = []

    def lock_then_buyer_pays(*args: Any, for_update: bool = False) -> Any:
        locked = real_lock(*args, for_update=for_update)
        if not for_update:  # the job's unlocked look at whether the subscription is due
            return locked
        thread = threading.Thread(target=lambda: confirmed.append(shop.confirm(payment)))
        thread.start()  # the notification waits for the order's lock
        books.wait_for_a_row_lock_wait(database, "the gateway's notification")
        lock_then_buyer_pays.thread = thread  # type: ignore[attr-defined]
        return locked

    monkeypatch.setattr(service, "_failing_order", lock_then_buyer_pays)
    shop.at(failing["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    lock_then_buyer_pays.thread.join(timeout=30)  # type: ignore[attr-defined]
    assert confirmed, "the notification was answered"
    assert shop.balance() == 0  # the wallet paid the order
    assert shop.get(f"/v1/payments/{payment['id']}")["is_duplicate"] is True
    assert shop.subscription(subscription["id"])["renewals"] == 1
    assert shop.access_until() == _moment(failing["next_attempt_at"]) + timedelta(days=30)
    assert books.violations(database) == []


def test_a_subscription_renewed_after_a_purchase_by_hand_renews_again_with_a_new_order(
    build: Builders, app: FastAPI
) -> None:
    """Order numbers used to repeat after a failing subscription recovered without renewing:
    the next renewal took the old order (closed: a false failure; paid: an error forever)."""
    shop = MemberShop(build, app, coins=PRICE)
    subscription, failing = _failing(shop)
    shop.confirm(shop.pay(shop.order(shop.membership)))  # bought by hand meanwhile
    shop.at(failing["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    jobs = payment_tasks.JobContext(
        database=build.database, payments=app.state.payments_context, clock=build.clock
    )
    shop.clock.advance(timedelta(hours=2))
    assert payment_tasks.expire_orders(jobs) == 1  # the old renewal order is closed
    shop.top_up(10 * PRICE)
    shop.at(shop.subscription(subscription["id"])["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    renewed = shop.subscription(subscription["id"])
    assert renewed["latest_order_id"] != failing["latest_order_id"]
    assert shop.balance() == 9 * PRICE


def test_an_old_renewal_order_paid_after_a_recovery_does_not_stop_the_renewals(
    build: Builders, app: FastAPI
) -> None:
    """The next renewal used to rebuild the old order's number, find it paid, and fail with
    an error on every run from then on, never renewing nor ending."""
    shop = MemberShop(build, app, coins=PRICE)
    subscription, failing = _failing(shop)
    shop.confirm(shop.pay(shop.order(shop.membership)))  # bought by hand
    shop.at(failing["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}  # active again, nothing charged
    shop.confirm(shop.pay({"id": failing["latest_order_id"]}))  # the old order, paid late
    shop.top_up(10 * PRICE)
    outcomes = []
    for _ in range(3):
        shop.at(shop.subscription(subscription["id"])["next_attempt_at"])
        outcomes.append(shop.run_job())
    # The late payment bought a period: the first time finds it paid ahead; then renewals.
    assert outcomes == [{"followed": 1}, {"renewed": 1}, {"renewed": 1}]
    assert shop.balance() == 8 * PRICE
    assert books.violations(build.database) == []


def test_a_wallet_that_no_longer_holds_the_currency_is_a_failed_try_not_an_error(
    build: Builders, app: FastAPI
) -> None:
    shop = MemberShop(build, app)
    subscription = shop.subscribed()
    context = shop.renewals.subscriptions
    shop.renewals = dataclasses.replace(
        shop.renewals,
        subscriptions=dataclasses.replace(
            context, wallet=context.wallet.model_copy(update={"currencies": ["USD"]})
        ),
    )
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"failed": 1}
    failing = shop.subscription(subscription["id"])
    assert (failing["status"], failing["last_failure_code"]) == (
        "past_due",
        "wallet_currency_not_supported",
    )


def test_a_renewal_that_keeps_raising_is_put_back_behind_the_others(
    build: Builders, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken, healthy = MemberShop(build, app), MemberShop(build, app)
    stuck = broken.subscribed()
    build.clock.advance(timedelta(minutes=1))
    fine = healthy.subscribed()
    broken.renewals = dataclasses.replace(broken.renewals, batch=1)
    real = service.renew_due

    def raise_for_the_broken_one(session: Any, ctx: Any, subscription_id: str, now: Any) -> Any:
        if subscription_id == stuck["id"]:
            raise RuntimeError("a bug")
        return real(session, ctx, subscription_id, now)

    monkeypatch.setattr(service, "renew_due", raise_for_the_broken_one)
    broken.at(fine["next_attempt_at"])
    assert broken.run_job() == {"error": 1}  # a batch of one: the oldest, the broken one
    assert broken.run_job() == {"renewed": 1}  # then the healthy one, no longer held up
    assert healthy.subscription(fine["id"])["renewals"] == 1


def test_a_changed_period_ends_the_subscription_without_a_charge(
    build: Builders, app: FastAPI
) -> None:
    shop = MemberShop(build, app)
    subscription = shop.subscribed()
    changed = shop.client.patch(
        f"/v1/products/{shop.membership['id']}",
        json={"period_days": 1},
        headers=shop.app.headers,
    )
    assert changed.status_code == 200, changed.text
    shop.at(subscription["next_attempt_at"])
    assert shop.run_job() == {"canceled": 1}
    ended = shop.subscription(subscription["id"])
    assert (ended["status"], ended["cancel_reason"]) == ("canceled", "period_changed")
    assert shop.balance() == 10_000 - PRICE


def test_the_dunning_order_stays_payable_until_after_each_next_try(
    build: Builders, app: FastAPI
) -> None:
    shop = MemberShop(build, app, coins=PRICE)
    _, first = _failing(shop)
    shop.at(first["next_attempt_at"])
    assert shop.run_job() == {"failed": 1}
    second = shop.subscription(first["id"])
    assert second["latest_order_id"] == first["latest_order_id"]
    order = shop.get(f"/v1/orders/{second['latest_order_id']}")
    assert _moment(order["expires_at"]) == _moment(second["next_attempt_at"]) + timedelta(hours=1)
    shop.clock.advance(timedelta(days=2))
    shop.confirm(shop.pay(order))  # still payable at the cashier two days on
    assert shop.run_job() == {"renewed": 1}


def test_a_lower_price_during_dunning_is_charged_on_a_new_order(
    build: Builders, app: FastAPI
) -> None:
    shop = MemberShop(build, app, coins=PRICE)
    _, failing = _failing(shop)
    shop.client.patch(
        f"/v1/products/{shop.membership['id']}",
        json={"prices": [{"amount": 1000, "currency": "CNY"}]},
        headers=shop.app.headers,
    ).raise_for_status()
    shop.top_up(1000)
    shop.at(failing["next_attempt_at"])
    assert shop.run_job() == {"renewed": 1}
    renewed = shop.subscription(failing["id"])
    assert renewed["latest_order_id"] != failing["latest_order_id"]
    assert shop.get(f"/v1/orders/{renewed['latest_order_id']}")["amount"] == 1000
    assert shop.balance() == 0


def test_a_lead_longer_than_the_period_renews_one_period_at_a_time(
    build: Builders, app: FastAPI
) -> None:
    shop = MemberShop(build, app)
    _with_policy(shop, renew_before_s=3 * 86400)
    app.state.subscriptions_context = shop.renewals.subscriptions
    daily = build.product(
        shop.app,
        title="Daily",
        kind="membership",
        period_days=1,
        prices=[{"amount": 100, "currency": "CNY"}],
    )
    response = shop.subscribe(product_id=daily["id"])
    assert response.status_code == 201, response.text
    subscription = response.json()
    charge_at = _moment(subscription["next_attempt_at"])
    assert charge_at == _moment(subscription["current_period_end"]) - timedelta(hours=12)
    assert [shop.run_job() for _ in range(3)] == [{}, {}, {}]
    assert shop.balance() == 10_000 - 100
