"""The knowledge-coin wallet: top-ups through a gateway, payments guarded by the payment
password, refunds back to the wallet, and the books agreeing at every step."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from knowpay.kit.db import Database
from knowpay.ledger.accounts import PLATFORM_REVENUE, buyer_wallet, channel_clearing
from knowpay.payments.models import Payment
from knowpay.wallet.models import Wallet
from tests import books
from tests.builders import Builders, Caller, Shop

PASSWORD = "246810"


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def _top_up(shop: Shop, amount: int, caller: Caller | None = None, **fields: Any) -> Any:
    body: dict[str, Any] = {"amount": amount, "currency": "CNY", **fields}
    if caller is None:
        body.setdefault("user_id", shop.buyer.id)
    return shop.client.post("/v1/wallet/top-ups", json=body, headers=(caller or shop.app).headers)


def _topped_up(shop: Shop, amount: int) -> dict[str, Any]:
    response = _top_up(shop, amount)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    shop.confirm(shop.pay(order))
    return order


def _set_password(shop: Shop) -> None:
    response = shop.client.put(
        "/v1/users/me/payment-password",
        json={"new_password": PASSWORD},
        headers=shop.buyer.headers,
    )
    assert response.status_code == 200, response.text


def _pay_from_wallet(shop: Shop, order: dict[str, Any], password: str = PASSWORD) -> Any:
    return shop.client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "wallet", "payment_password": password},
        headers=shop.app.headers,
    )


def _balance(shop: Shop, caller: Caller | None = None) -> list[dict[str, Any]]:
    path = "/v1/wallet" if caller else f"/v1/wallet?user_id={shop.buyer.id}"
    response = shop.client.get(path, headers=(caller or shop.app).headers)
    assert response.status_code == 200, response.text
    balances: list[dict[str, Any]] = response.json()["balances"]
    return balances


def _payments(database: Database, order_id: str) -> list[Payment]:
    with database.session_scope(read_only=True) as session:
        return list(session.scalars(select(Payment).where(Payment.order_id == order_id)))


def test_a_paid_top_up_fills_the_wallet_and_is_owed_to_the_buyer(
    shop: Shop, database: Database
) -> None:
    order = _topped_up(shop, 5000)
    assert (order["kind"], order["items"], order["amount"]) == ("top_up", [], 5000)
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert _balance(shop) == [{"amount": 5000, "currency": "CNY"}]
    assert _balance(shop, shop.buyer) == [{"amount": 5000, "currency": "CNY"}]
    [change] = shop.get(f"/v1/wallet/transactions?user_id={shop.buyer.id}")["data"]
    assert (change["kind"], change["amount"], change["balance_after"]) == ("top_up", 5000, 5000)
    assert change["order_id"] == order["id"]
    # Owed to the buyer, not earned: nothing reaches revenue, and no content is granted.
    assert books.account_balance(database, buyer_wallet(shop.buyer.id)) == -5000
    assert books.account_balance(database, PLATFORM_REVENUE) == 0
    assert books.entitlements(database, shop.buyer.id) == []
    assert books.violations(database) == []


def test_a_buyer_tops_up_their_own_wallet_only(shop: Shop, build: Builders) -> None:
    mine = _top_up(shop, 1000, caller=shop.buyer)
    assert mine.status_code == 201, mine.text
    assert mine.json()["user_id"] == shop.buyer.id
    other = build.buyer(shop.app)
    theirs = _top_up(shop, 1000, caller=shop.buyer, user_id=other.id)
    assert (theirs.status_code, theirs.json()["code"]) == (422, "user_not_found")
    stranger_app = build.app("other")
    foreign = _top_up(shop, 1000, caller=stranger_app, user_id=shop.buyer.id)
    assert (foreign.status_code, foreign.json()["code"]) == (422, "user_not_found")
    unnamed = _top_up(shop, 1000, caller=shop.app)
    assert (unnamed.status_code, unnamed.json()["code"]) == (422, "user_not_found")


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        (99, "CNY", "top_up_out_of_range"),
        (500_001, "CNY", "top_up_out_of_range"),
        (1000, "USD", "wallet_currency_not_supported"),
    ],
)
def test_a_top_up_outside_the_wallet_rules_is_refused_and_writes_nothing(
    shop: Shop, database: Database, amount: int, currency: str, code: str
) -> None:
    response = _top_up(shop, amount, currency=currency)
    assert (response.status_code, response.json()["code"]) == (422, code)
    assert shop.get("/v1/orders")["data"] == []


def test_a_top_up_beyond_the_balance_cap_is_refused(shop: Shop) -> None:
    for _ in range(10):
        _topped_up(shop, 500_000)
    response = _top_up(shop, 100)
    assert (response.status_code, response.json()["code"]) == (422, "wallet_balance_cap_reached")
    assert response.json()["balance"] == 5_000_000


def test_a_repeated_top_up_out_trade_no_returns_the_same_order(shop: Shop) -> None:
    first = _top_up(shop, 1000, out_trade_no="T-1")
    again = _top_up(shop, 1000, out_trade_no="T-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = _top_up(shop, 2000, out_trade_no="T-1")
    assert (other.status_code, other.json()["code"]) == (409, "out_trade_no_conflict")


def test_paying_from_the_wallet_pays_the_order_at_once(shop: Shop, database: Database) -> None:
    _set_password(shop)
    _topped_up(shop, 20000)
    order = shop.order()
    response = _pay_from_wallet(shop, order)
    assert response.status_code == 201, response.text
    payment = response.json()
    assert (payment["status"], payment["channel"]) == ("succeeded", "wallet")
    assert payment["action"] == {"type": "none"}
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert _balance(shop) == [{"amount": 10100, "currency": "CNY"}]
    [entitlement] = books.entitlements(database, shop.buyer.id)
    assert entitlement.payment_id == payment["id"]
    assert books.account_balance(database, PLATFORM_REVENUE) == -9900
    assert books.account_balance(database, buyer_wallet(shop.buyer.id)) == -10100
    assert books.account_balance(database, channel_clearing("wallet")) == 0
    spent = shop.get(f"/v1/wallet/transactions?user_id={shop.buyer.id}")["data"][0]
    assert (spent["kind"], spent["amount"], spent["payment_id"]) == (
        "payment",
        -9900,
        payment["id"],
    )
    assert [e["type"] for e in books.events(database, stream_key=order["id"])][:3] == [
        "payment.succeeded",
        "order.paid",
        "entitlement.granted",
    ]
    assert books.violations(database) == []


def test_a_buyer_pays_from_their_own_wallet_with_their_token(shop: Shop) -> None:
    _set_password(shop)
    _topped_up(shop, 9900)
    order = shop.order()
    response = shop.client.post(
        f"/v1/orders/{order['id']}/payments",
        json={"channel": "wallet", "payment_password": PASSWORD},
        headers=shop.buyer.headers,
    )
    assert response.status_code == 201, response.text
    assert _balance(shop) == [{"amount": 0, "currency": "CNY"}]


def test_too_small_a_balance_is_402_and_changes_nothing(shop: Shop, database: Database) -> None:
    _set_password(shop)
    _topped_up(shop, 5000)
    order = shop.order()
    response = _pay_from_wallet(shop, order)
    assert response.status_code == 402, response.text
    problem = response.json()
    assert problem["code"] == "insufficient_balance"
    assert (problem["balance"], problem["required"]) == (5000, 9900)
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert _payments(database, order["id"]) == []
    assert _balance(shop) == [{"amount": 5000, "currency": "CNY"}]
    assert books.violations(database) == []


def test_a_wrong_payment_password_is_counted_and_locks_after_five(
    shop: Shop, database: Database
) -> None:
    _set_password(shop)
    _topped_up(shop, 20000)
    order = shop.order()
    wrong = _pay_from_wallet(shop, order, password="000000")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "payment_password_incorrect")
    assert wrong.json()["remaining_tries"] == 4
    for _ in range(4):
        wrong = _pay_from_wallet(shop, order, password="000000")
    assert (wrong.status_code, wrong.json()["code"]) == (423, "payment_password_locked")
    locked = _pay_from_wallet(shop, order)  # the right one, but locked now
    assert locked.status_code == 423
    assert _payments(database, order["id"]) == []
    assert _balance(shop) == [{"amount": 20000, "currency": "CNY"}]


def test_paying_from_the_wallet_without_a_payment_password_set_is_refused(shop: Shop) -> None:
    _topped_up(shop, 20000)
    response = _pay_from_wallet(shop, shop.order())
    assert (response.status_code, response.json()["code"]) == (403, "payment_password_not_set")


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "wallet"},
        {"channel": "test", "payment_password": PASSWORD},
        {"channel": "wallet", "payment_password": "12345"},
    ],
)
def test_the_payment_password_goes_with_the_wallet_channel_only(
    shop: Shop, body: dict[str, Any]
) -> None:
    order = shop.order()
    response = shop.client.post(
        f"/v1/orders/{order['id']}/payments", json=body, headers=shop.app.headers
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["payment_password"]


def test_a_top_up_cannot_be_paid_from_the_wallet(shop: Shop) -> None:
    _set_password(shop)
    _topped_up(shop, 20000)
    order = _top_up(shop, 1000).json()
    response = _pay_from_wallet(shop, order)
    assert (response.status_code, response.json()["code"]) == (422, "channel_not_for_top_ups")


def test_a_wallet_payment_refunds_to_the_wallet_at_once(shop: Shop, database: Database) -> None:
    _set_password(shop)
    _topped_up(shop, 9900)
    order = shop.order()
    assert _pay_from_wallet(shop, order).status_code == 201
    response = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 3000, "reason": "other"},
        headers=shop.app.headers,
    )
    assert response.status_code == 201, response.text
    refund = response.json()
    assert refund["status"] == "succeeded"
    assert "money_returned" in [step["step"] for step in refund["timeline"]]
    assert _balance(shop) == [{"amount": 3000, "currency": "CNY"}]
    back = shop.get(f"/v1/wallet/transactions?user_id={shop.buyer.id}")["data"][0]
    assert (back["kind"], back["amount"], back["refund_id"]) == ("refund", 3000, refund["id"])
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "partially_refunded"
    assert books.account_balance(database, channel_clearing("wallet")) == 0
    assert books.violations(database) == []


def test_a_top_up_is_not_refunded_on_request(shop: Shop, database: Database) -> None:
    order = _topped_up(shop, 5000)
    response = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "other"},
        headers=shop.app.headers,
    )
    assert (response.status_code, response.json()["code"]) == (409, "top_up_not_refundable")
    assert _balance(shop) == [{"amount": 5000, "currency": "CNY"}]


def test_a_duplicate_payment_of_a_top_up_is_refunded_and_credits_once(
    shop: Shop, database: Database
) -> None:
    order = _top_up(shop, 5000).json()
    first, second = shop.pay(order), shop.pay(order)
    shop.confirm(first)
    shop.confirm(second)
    assert _balance(shop) == [{"amount": 5000, "currency": "CNY"}]
    assert books.account_balance(database, buyer_wallet(shop.buyer.id)) == -5000
    assert books.violations(database) == []


def test_money_resolved_to_the_wallet_can_be_spent(shop: Shop, build: Builders) -> None:
    from knowpay.auth.principals import Role
    from knowpay.channels.testchannel.store import TestGatewayTrade

    order = shop.order()
    shop.confirm(shop.pay(order))
    payment_id = shop.get(f"/v1/orders/{order['id']}")["payment_id"]
    store = shop.client.app.state.channel_registry.adapter("test")._store  # type: ignore[attr-defined]
    with store._database.session_scope() as session:
        session.get(TestGatewayTrade, payment_id).status = "frozen"
    failed = shop.client.post(
        "/v1/refunds", json={"order_id": order["id"], "reason": "other"}, headers=shop.app.headers
    ).json()
    assert failed["status"] == "failed"
    finance = build.staff(Role.FINANCE)
    resolved = shop.client.post(
        f"/v1/refunds/{failed['id']}/resolve", json={"method": "wallet"}, headers=finance.headers
    )
    assert resolved.status_code == 200, resolved.text
    assert _balance(shop) == [{"amount": 9900, "currency": "CNY"}]
    _set_password(shop)
    again = _pay_from_wallet(shop, shop.order())
    assert again.status_code == 201, again.text
    assert _balance(shop) == [{"amount": 0, "currency": "CNY"}]


def test_the_ledger_check_finds_a_wallet_that_disagrees_with_the_ledger(
    shop: Shop, database: Database
) -> None:
    _topped_up(shop, 5000)
    with database.session_scope() as session:
        session.scalars(select(Wallet)).one().balance_minor = 7000
    rules = {v.split(" ")[0] for v in books.violations(database)}
    assert {"wallet_matches_ledger", "wallet_matches_transactions"} <= rules


def test_a_wallet_is_seen_only_by_its_buyer_their_app_and_staff(
    shop: Shop, build: Builders
) -> None:
    from knowpay.auth.principals import Role

    _topped_up(shop, 1000)
    stranger_app, other_buyer = build.app("other"), build.buyer(shop.app)
    path = f"/v1/wallet?user_id={shop.buyer.id}"
    for caller in (stranger_app, other_buyer):
        response = shop.client.get(path, headers=caller.headers)
        assert (response.status_code, response.json()["code"]) == (404, "user_not_found")
    missing = shop.client.get("/v1/wallet?user_id=usr_missing", headers=shop.app.headers)
    assert missing.json() == {**missing.json(), "status": 404, "code": "user_not_found"}
    assert shop.client.get("/v1/wallet", headers=shop.app.headers).status_code == 400
    support = build.staff(Role.SUPPORT)
    assert shop.client.get(path, headers=support.headers).json()["balances"][0]["amount"] == 1000


def test_orders_are_listed_by_kind(shop: Shop) -> None:
    top_up = _top_up(shop, 1000).json()
    purchase = shop.order()
    for kind, expected in (("top_up", [top_up["id"]]), ("purchase", [purchase["id"]])):
        listed = shop.get(f"/v1/orders?kind={kind}")["data"]
        assert [o["id"] for o in listed] == expected
    mine = shop.client.get("/v1/orders?kind=top_up", headers=shop.buyer.headers).json()["data"]
    assert [o["id"] for o in mine] == [top_up["id"]]
    assert shop.client.get("/v1/orders?kind=gift", headers=shop.app.headers).status_code == 422


def test_top_ups_awaiting_payment_count_towards_the_balance_cap(shop: Shop) -> None:
    """Found by an audit: eleven top-ups of 5,000.00 asked for before any was paid were all
    accepted, and paid they passed the 50,000.00 cap."""
    for _ in range(10):
        assert _top_up(shop, 500_000).status_code == 201
    refused = _top_up(shop, 100)
    assert (refused.status_code, refused.json()["code"]) == (422, "wallet_balance_cap_reached")
    assert (refused.json()["balance"], refused.json()["awaiting_payment"]) == (0, 5_000_000)


def test_a_buyer_cannot_name_a_top_up_with_the_apps_order_numbers(shop: Shop) -> None:
    """Found by an audit: a buyer's out_trade_no shared the app's numbers, so a buyer could
    learn which the app had used (and the order id behind one) and take future ones."""
    shop.order(out_trade_no="SHOP-0101")
    for number in ("SHOP-0101", "SHOP-0102"):
        response = _top_up(shop, 1000, caller=shop.buyer, out_trade_no=number)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["out_trade_no"]
        assert "ord_" not in response.text
    assert _top_up(shop, 1000, out_trade_no="SHOP-0102").status_code == 201  # the app's


def test_a_right_payment_password_resets_the_count_even_when_the_payment_is_refused(
    shop: Shop,
) -> None:
    """Found by an audit: the reset was rolled back with the 402, so one more wrong try
    after four wrong ones and a right one locked the password."""
    _set_password(shop)
    _topped_up(shop, 5000)
    order = shop.order()  # 99.00: more than the balance
    for _ in range(4):
        assert _pay_from_wallet(shop, order, password="000000").status_code == 403
    assert _pay_from_wallet(shop, order).status_code == 402
    wrong = _pay_from_wallet(shop, order, password="000000")
    assert (wrong.status_code, wrong.json()["remaining_tries"]) == (403, 4)
