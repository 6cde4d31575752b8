"""Creators' share of each sale: posted when an order is paid, taken back in proportion when
it is refunded, stated monthly, and paid out; the ledger agrees at every step."""

from __future__ import annotations

from typing import Any

import pytest

from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.ledger.accounts import CREATOR_PAYOUTS, PLATFORM_REVENUE, creator_payable
from tests import books
from tests.builders import Builders, Caller, CreatorShop


class Studio(CreatorShop):
    def refund(self, order: dict[str, Any], amount: int) -> dict[str, Any]:
        response = self.client.post(
            "/v1/refunds",
            json={"order_id": order["id"], "amount": amount, "reason": "other"},
            headers=self.app.headers,
        )
        assert response.status_code == 201, response.text
        refund: dict[str, Any] = response.json()
        if refund["status"] == "pending_approval":  # asked for after the automatic window
            approved = self.client.post(
                f"/v1/refunds/{refund['id']}/approve", json={}, headers=self.finance.headers
            )
            refund = approved.json()
        assert refund["status"] == "succeeded", refund
        return refund

    def owed(self, caller: Caller | None = None) -> list[dict[str, Any]]:
        path = f"/v1/creators/{'me' if caller else self.creator.id}/balance"
        response = self.client.get(path, headers=(caller or self.app).headers)
        assert response.status_code == 200, response.text
        owed: list[dict[str, Any]] = response.json()["owed"]
        return owed

    def settle(self, month: str) -> Any:
        return self.client.post(
            "/v1/admin/settlements/run", json={"month": month}, headers=self.finance.headers
        )

    def pay_out(self, settlement_id: str) -> Any:
        return self.client.post(
            f"/v1/admin/settlements/{settlement_id}/pay",
            json={"reference": "BANK-TRANSFER-1"},
            headers=self.finance.headers,
        )


@pytest.fixture
def studio(build: Builders) -> Studio:
    return Studio(build)


def test_a_sale_owes_the_creator_their_share(studio: Studio, database: Database) -> None:
    studio.paid_order()
    assert studio.owed() == [{"amount": 6930, "currency": "CNY"}]
    assert studio.owed(studio.creator) == [{"amount": 6930, "currency": "CNY"}]
    assert books.account_balance(database, creator_payable(studio.creator.id)) == -6930
    assert books.account_balance(database, PLATFORM_REVENUE) == -2970
    assert books.violations(database) == []


def test_a_product_without_a_creator_owes_nobody(studio: Studio, database: Database) -> None:
    own = studio.build.product(studio.app, title="House course")
    studio.confirm(studio.pay(studio.order(own)))
    assert books.account_balance(database, PLATFORM_REVENUE) == -9900
    assert studio.owed() == []


def test_refunds_take_the_share_back_in_proportion_and_in_full_at_the_end(
    studio: Studio, database: Database
) -> None:
    order = studio.paid_order()
    studio.refund(order, 3000)
    assert studio.owed() == [{"amount": 6930 - 2100, "currency": "CNY"}]  # 6930 × 30/99
    assert books.violations(database) == []
    studio.refund(order, 6900)
    assert studio.owed() == [{"amount": 0, "currency": "CNY"}]
    assert books.account_balance(database, PLATFORM_REVENUE) == 0
    assert books.violations(database) == []


def test_the_share_is_the_one_in_force_when_the_order_was_made(
    studio: Studio, database: Database
) -> None:
    order = studio.order()
    studio.client.app.state.settings.revenue_share.creator_share_bps = 5000  # type: ignore[attr-defined]
    studio.confirm(studio.pay(order))
    assert studio.owed() == [{"amount": 6930, "currency": "CNY"}]


def test_a_month_is_stated_once_and_paid_out(
    studio: Studio, database: Database, clock: FrozenClock
) -> None:
    studio.paid_order()
    assert (studio.settle("2026-01").status_code, studio.settle("2026-01").json()["code"]) == (
        422,
        "period_not_over",
    )
    studio.advance(clock, 31)  # 2026-02-01 12:00 UTC: January has ended in Shanghai
    first = studio.settle("2026-01")
    assert first.status_code == 200, first.text
    [statement] = first.json()
    assert (statement["earned"], statement["reversed"], statement["amount"]) == (6930, 0, 6930)
    assert (statement["status"], statement["period_start"]) == ("open", "2026-01-01")
    assert studio.settle("2026-01").json() == [statement]  # made once
    read = studio.client.get(f"/v1/settlements/{statement['id']}", headers=studio.creator.headers)
    assert [(line["kind"], line["amount"]) for line in read.json()["lines"]] == [
        ("creator_share", 6930)
    ]
    paid = studio.pay_out(statement["id"])
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["payout_reference"]) == ("paid", "BANK-TRANSFER-1")
    assert studio.owed() == [{"amount": 0, "currency": "CNY"}]
    assert books.account_balance(database, CREATOR_PAYOUTS) == -6930  # paid out
    again = studio.pay_out(statement["id"])
    assert (again.status_code, again.json()["code"]) == (409, "settlement_not_payable")
    assert [e["type"] for e in books.events(database, stream_key=statement["id"])] == [
        "settlement.created",
        "settlement.paid",
    ]
    assert books.violations(database) == []


def test_an_unpaid_statement_is_superseded_by_the_next_which_states_both(
    studio: Studio, clock: FrozenClock
) -> None:
    studio.paid_order()
    studio.advance(clock, 31)
    [january] = studio.settle("2026-01").json()
    studio.paid_order()
    studio.advance(clock, 28)  # 2026-03-01
    [february] = studio.settle("2026-02").json()
    assert (february["earned"], february["amount"], february["status"]) == (6930, 13860, "open")
    stale = studio.client.get(f"/v1/settlements/{january['id']}", headers=studio.finance.headers)
    assert stale.json()["status"] == "superseded"
    refused = studio.pay_out(january["id"])
    assert (refused.status_code, refused.json()["code"]) == (409, "settlement_not_payable")
    assert studio.pay_out(february["id"]).status_code == 200
    assert studio.owed() == [{"amount": 0, "currency": "CNY"}]


def test_a_refund_after_the_payout_is_set_off_against_later_sales(
    studio: Studio, database: Database, clock: FrozenClock
) -> None:
    order = studio.paid_order()
    studio.advance(clock, 31)
    [january] = studio.settle("2026-01").json()
    studio.pay_out(january["id"])
    studio.refund(order, 9900)
    assert studio.owed() == [{"amount": -6930, "currency": "CNY"}]
    studio.advance(clock, 28)
    [february] = studio.settle("2026-02").json()
    assert (february["reversed"], february["amount"], february["status"]) == (
        6930,
        -6930,
        "nothing_due",
    )
    assert studio.pay_out(february["id"]).status_code == 409
    assert books.violations(database) == []


def test_statements_are_seen_by_their_creator_their_app_and_staff_only(
    studio: Studio, build: Builders, clock: FrozenClock
) -> None:
    studio.paid_order()
    studio.advance(clock, 31)
    [statement] = studio.settle("2026-01").json()
    other_creator = build.buyer(studio.app, role="creator")
    stranger_app = build.app("other")
    for caller in (studio.creator, studio.app, studio.finance):
        listed = studio.client.get("/v1/settlements", headers=caller.headers).json()["data"]
        assert [s["id"] for s in listed] == [statement["id"]]
    for caller in (other_creator, stranger_app, studio.buyer):
        assert studio.client.get("/v1/settlements", headers=caller.headers).json()["data"] == []
        read = studio.client.get(f"/v1/settlements/{statement['id']}", headers=caller.headers)
        assert (read.status_code, read.json()["code"]) == (404, "settlement_not_found")
    foreign = studio.client.get(
        f"/v1/creators/{studio.creator.id}/balance", headers=stranger_app.headers
    )
    assert (foreign.status_code, foreign.json()["code"]) == (404, "user_not_found")
    for caller in (studio.creator, studio.app, studio.buyer):
        refused = studio.client.post(
            f"/v1/admin/settlements/{statement['id']}/pay", json={}, headers=caller.headers
        )
        assert refused.status_code == 403


def test_the_worker_settles_the_month_that_ended(
    studio: Studio, database: Database, clock: FrozenClock
) -> None:
    from knowpay.settlements.tasks import SettlementContext, settle_last_month

    studio.paid_order()
    context = SettlementContext(database=database, clock=clock, timezone="Asia/Shanghai")
    assert settle_last_month(context) == 0  # December 2025: nothing happened
    studio.advance(clock, 31)
    assert settle_last_month(context) == 1
    assert settle_last_month(context) == 0
    listed = studio.client.get("/v1/settlements", headers=studio.finance.headers).json()["data"]
    assert [(s["period_start"], s["amount"]) for s in listed] == [("2026-01-01", 6930)]


@pytest.mark.parametrize("month", ["0000-01", "1969-12", "9999-12", "2026-13", "2026-1"])
def test_a_month_knowpay_cannot_hold_is_a_422(studio: Studio, month: str) -> None:
    """Found by the fuzzer: year 0 was a 500 (Python's dates start at year 1)."""
    response = studio.settle(month)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["month"]


def test_a_payout_made_after_the_next_month_ended_is_not_stated_again(
    studio: Studio, database: Database, clock: FrozenClock
) -> None:
    """Found by an audit: February's statement, made after January's was paid in March,
    stated January's amount again (the balance at February's end still held it), and both
    were paid: the creator got twice what they earned."""
    studio.paid_order()  # January
    studio.advance(clock, 31)
    [january] = studio.settle("2026-01").json()
    studio.paid_order()  # February
    studio.advance(clock, 28)  # 2026-03-01: February has ended too
    assert studio.pay_out(january["id"]).status_code == 200  # paid only now
    [february] = studio.settle("2026-02").json()
    assert (february["earned"], february["amount"]) == (6930, 6930)
    assert studio.pay_out(february["id"]).status_code == 200
    assert studio.owed() == [{"amount": 0, "currency": "CNY"}]
    studio.advance(clock, 31)  # April: March had nothing, and nothing is owed
    assert studio.settle("2026-03").json() == []
    assert books.account_balance(database, CREATOR_PAYOUTS) == -2 * 6930
