"""The knowledge-coin wallet on the pages: paying from it at the cashier with the payment
password (and every refusal in plain words, in both languages), the option disabled when the
balance is too small, never offered for a top-up or to a cashier link's holder, and the
buyer center's balances and history."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.auth.principals import Role
from knowpay.channels.testchannel.store import TestGatewayTrade
from tests.builders import Builders, Shop
from tests.web.helpers import csrf_of, login, untranslated, visible_text

PASSWORD = "246810"
WRONG = "135791"
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    """A browser of its own: its cookies never ride along on the builders' API calls."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def shop(build: Builders) -> Shop:
    shop = Shop(build)
    # A title that is no msgid of the catalog, so the "untranslated" check reads only ours.
    shop.course = build.product(
        shop.app, title="数据分析 30 讲", prices=[{"amount": 9900, "currency": "CNY"}]
    )
    return shop


def logged_in_buyer(browser: TestClient, shop: Shop) -> None:
    response = login(browser, shop.buyer.email, shop.buyer.password)
    assert response.status_code == 303, response.text


def top_up(shop: Shop, amount: int) -> dict[str, Any]:
    """A top-up order for the buyer, asked for by the app (not paid)."""
    response = shop.client.post(
        "/v1/wallet/top-ups",
        json={"user_id": shop.buyer.id, "amount": amount, "currency": "CNY"},
        headers=shop.app.headers,
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def topped_up(shop: Shop, amount: int) -> dict[str, Any]:
    """Coins in the buyer's wallet: a top-up paid through the test gateway."""
    order = top_up(shop, amount)
    shop.confirm(shop.pay(order))
    return order


def set_payment_password(shop: Shop) -> None:
    response = shop.client.put(
        "/v1/users/me/payment-password",
        json={"new_password": PASSWORD},
        headers=shop.buyer.headers,
    )
    assert response.status_code == 200, response.text


def balance(shop: Shop) -> int:
    [held] = shop.get(f"/v1/wallet?user_id={shop.buyer.id}")["balances"]
    amount: int = held["amount"]
    return amount


def pay_from_wallet(
    browser: TestClient, order_id: str, password: str, lang: str | None = None
) -> Any:
    """What the cashier's knowledge-coin form posts: the channel, the password, the token."""
    query = f"?lang={lang}" if lang else ""
    page = browser.get(f"/pay/{order_id}{query}")
    return browser.post(
        f"/pay/{order_id}/payments{query}",
        data={"channel": "wallet", "payment_password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def wallet_form(page: str) -> str:
    found = re.search(r'<form [^>]*id="wallet-option".*?</form>', page, flags=re.S)
    assert found, "the cashier offers no knowledge coins"
    return found.group(0)


# ---------------------------------------------------------------------------------------
# The cashier


def test_a_buyer_pays_from_the_wallet_with_the_right_password(
    browser: TestClient, shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    topped_up(shop, 20000)
    set_payment_password(shop)
    order = shop.order()
    logged_in_buyer(browser, shop)

    page = browser.get(f"/pay/{order['id']}", headers=ZH)
    form = wallet_form(page.text)
    assert "知识币" in form
    assert "¥200.00" in form  # the balance
    assert 'name="channel" value="wallet"' in form
    assert 'name="csrf_token"' in form
    field = re.search(r"<input [^>]*name=\"payment_password\"[^>]*>", form)
    assert field is not None
    for attribute in ('type="password"', 'inputmode="numeric"', 'autocomplete="off"'):
        assert attribute in field.group(0), attribute
    assert 'maxlength="6"' in field.group(0)
    assert "value=" not in field.group(0)
    assert "disabled" not in form
    assert untranslated(page.text) == []
    # Without the page's CSRF token the form does nothing.
    forged = browser.post(
        f"/pay/{order['id']}/payments",
        data={"channel": "wallet", "payment_password": PASSWORD},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"

    paid = pay_from_wallet(browser, order["id"], PASSWORD)

    assert paid.status_code == 303
    assert paid.headers["location"] == f"/pay/{order['id']}"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "paid"
    assert balance(shop) == 20000 - 9900
    [payment] = shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert (payment["channel"], payment["status"]) == ("wallet", "succeeded")
    done = browser.get(paid.headers["location"])
    assert "支付成功" in done.text
    assert 'id="wallet-option"' not in done.text
    assert browser.get(f"/pay/{order['id']}/status").json()["state"] == "paid"
    # The password went to the endpoint and nowhere else.
    assert PASSWORD not in done.text
    assert PASSWORD not in caplog.text


def test_a_wrong_password_leaves_the_order_unpaid_and_says_how_many_tries_are_left(
    browser: TestClient, shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    topped_up(shop, 20000)
    set_payment_password(shop)
    order = shop.order()
    logged_in_buyer(browser, shop)

    refused = pay_from_wallet(browser, order["id"], WRONG)

    assert refused.status_code == 303
    location = refused.headers["location"]
    assert location == f"/pay/{order['id']}?error=payment_password_incorrect&tries=4"
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert balance(shop) == 20000
    assert shop.get(f"/v1/orders/{order['id']}/payments")["data"] == []
    zh = browser.get(location)
    assert "支付密码错误，还可再试 4 次" in visible_text(zh.text)
    assert 'id="wallet-option"' in zh.text  # the buyer may try again
    assert untranslated(zh.text) == []
    english = pay_from_wallet(browser, order["id"], WRONG, lang="en")
    assert english.headers["location"].endswith("error=payment_password_incorrect&tries=3&lang=en")
    en = browser.get(english.headers["location"])
    assert "The payment password is wrong. Tries left before it locks: 3." in en.text
    for text in (location, zh.text, english.headers["location"], en.text, caplog.text):
        assert WRONG not in text


def test_five_wrong_passwords_lock_it_and_the_page_says_until_when(
    browser: TestClient, shop: Shop
) -> None:
    topped_up(shop, 20000)
    set_payment_password(shop)
    order = shop.order()
    logged_in_buyer(browser, shop)
    for _ in range(4):
        pay_from_wallet(browser, order["id"], WRONG)

    locked = pay_from_wallet(browser, order["id"], WRONG)

    assert locked.headers["location"] == f"/pay/{order['id']}?error=payment_password_locked"
    zh = visible_text(browser.get(locked.headers["location"]).text)
    assert "支付密码输错次数过多，已锁定至" in zh
    still = pay_from_wallet(browser, order["id"], PASSWORD, lang="en")
    assert "error=payment_password_locked" in still.headers["location"]
    en = browser.get(still.headers["location"]).text
    assert "Your payment password is locked after too many wrong tries, until" in en
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert balance(shop) == 20000


@pytest.mark.parametrize(
    ("case", "code", "zh", "en"),
    [
        (
            "not_set",
            "payment_password_not_set",
            "您还没有设置支付密码",
            "You have not set a payment password yet.",
        ),
        (
            "insufficient",
            "insufficient_balance",
            "知识币余额不足：您的余额为 ¥50.00，本订单需支付 ¥99.00。",
            "Not enough knowledge coins: your balance is CN¥50.00 and this order costs CN¥99.00.",
        ),
        (
            "top_up",
            "channel_not_for_top_ups",
            "充值订单不能用知识币支付",
            "A top-up cannot be paid with knowledge coins.",
        ),
        (
            "usd",
            "wallet_currency_not_supported",
            "知识币不能支付该币种的订单",
            "Knowledge coins cannot pay an order in this currency.",
        ),
        ("short", "payment_password_format", "请输入 6 位数字支付密码", "Enter your 6-digit"),
    ],
)
def test_each_refusal_comes_back_to_the_cashier_in_plain_words(
    browser: TestClient, shop: Shop, build: Builders, case: str, code: str, zh: str, en: str
) -> None:
    """The form is posted as it is (the insufficient balance as when the balance fell after
    the page was shown); nothing is paid, and the page says why in the buyer's language."""
    topped_up(shop, 5000 if case == "insufficient" else 20000)
    if case != "not_set":
        set_payment_password(shop)
    if case == "top_up":
        order = top_up(shop, 1000)
    elif case == "usd":
        dollars = build.product(
            shop.app, title="英语口语 12 讲", prices=[{"amount": 1500, "currency": "USD"}]
        )
        order = shop.order(dollars, currency="USD")
    else:
        order = shop.order()
    logged_in_buyer(browser, shop)
    password = "12345" if case == "short" else PASSWORD

    for lang, text in (("zh_CN", zh), ("en", en)):
        refused = pay_from_wallet(browser, order["id"], password, lang=lang)
        assert refused.status_code == 303
        assert f"error={code}" in refused.headers["location"]
        assert password not in refused.headers["location"]
        page = browser.get(refused.headers["location"])
        assert text in visible_text(page.text), lang
        if lang == "zh_CN":
            assert untranslated(page.text) == []
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert shop.get(f"/v1/orders/{order['id']}/payments")["data"] == []


@pytest.mark.parametrize("coins", [5000, 0], ids=["too-few", "none"])
def test_too_small_a_balance_shows_the_option_disabled(
    browser: TestClient, shop: Shop, coins: int
) -> None:
    if coins:
        topped_up(shop, coins)
    set_payment_password(shop)
    order = shop.order()
    logged_in_buyer(browser, shop)

    zh = browser.get(f"/pay/{order['id']}", headers=ZH).text

    form = wallet_form(zh)
    assert "<fieldset disabled>" in form
    assert re.search(r"<button [^>]*data-channel=\"wallet\"[^>]*disabled", form)
    assert re.search(r"<input [^>]*name=\"payment_password\"[^>]*disabled", form)
    assert "余额不足" in form
    assert ("¥50.00" if coins else "¥0.00") in form
    assert 'data-channel="test"' in zh  # the other channels can pay it
    en = wallet_form(browser.get(f"/pay/{order['id']}?lang=en").text)
    assert "Insufficient balance" in en


def test_a_top_up_order_offers_no_wallet_and_says_what_it_is(
    browser: TestClient, shop: Shop
) -> None:
    topped_up(shop, 20000)
    set_payment_password(shop)
    order = top_up(shop, 5000)
    logged_in_buyer(browser, shop)

    zh = browser.get(f"/pay/{order['id']}", headers=ZH).text

    assert 'id="wallet-option"' not in zh
    assert 'name="payment_password"' not in zh
    assert 'data-channel="test"' in zh  # a top-up is paid through a gateway
    assert "知识币充值" in zh
    assert "¥50.00" in zh
    assert untranslated(zh) == []
    en = browser.get(f"/pay/{order['id']}?lang=en").text
    assert "Knowledge coins top-up" in en
    assert 'id="wallet-option"' not in en


def test_an_order_in_a_currency_the_wallet_does_not_hold_offers_no_wallet(
    browser: TestClient, shop: Shop, build: Builders
) -> None:
    topped_up(shop, 20000)
    dollars = build.product(
        shop.app, title="英语口语 12 讲", prices=[{"amount": 1500, "currency": "USD"}]
    )
    order = shop.order(dollars, currency="USD")
    yuan = shop.order()
    logged_in_buyer(browser, shop)
    assert 'id="wallet-option"' not in browser.get(f"/pay/{order['id']}").text
    assert 'id="wallet-option"' in browser.get(f"/pay/{yuan['id']}").text


def test_a_cashier_link_neither_shows_nor_spends_the_buyers_coins(
    browser: TestClient, shop: Shop
) -> None:
    topped_up(shop, 20000)
    set_payment_password(shop)
    order = shop.order()
    link = browser.post(f"/v1/orders/{order['id']}/cashier-link", headers=shop.app.headers)
    path = link.json()["url"].removeprefix("http://testserver")
    page = browser.get(path)
    assert page.status_code == 200
    assert 'id="wallet-option"' not in page.text
    assert "¥200.00" not in page.text

    refused = browser.post(
        f"/pay/{order['id']}/payments",
        data={"channel": "wallet", "payment_password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )

    assert refused.headers["location"] == f"/pay/{order['id']}?error=wallet_login_required"
    assert "请登录后使用知识币支付" in browser.get(refused.headers["location"]).text
    assert shop.get(f"/v1/orders/{order['id']}")["status"] == "created"
    assert balance(shop) == 20000


# ---------------------------------------------------------------------------------------
# The buyer center


def _history(page: str) -> list[tuple[str, ...]]:
    """The wallet's rows as the buyer reads them: (kind, what, amount, balance after), each
    with its date."""
    rows = re.findall(r'<tr class="wallet-change change-([a-z_]+)"[^>]*>(.*?)</tr>', page, re.S)
    history = []
    for kind, row in rows:
        when, *cells = [
            visible_text(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        assert when, "a change without its date"
        history.append((kind, *cells))
    return sorted(history)


def test_the_buyer_center_shows_the_balance_and_the_wallet_history_in_both_languages(
    browser: TestClient, shop: Shop, build: Builders
) -> None:
    top_up_order = topped_up(shop, 20000)  # +200.00
    set_payment_password(shop)
    bought = shop.order()
    paid = shop.client.post(
        f"/v1/orders/{bought['id']}/payments",
        json={"channel": "wallet", "payment_password": PASSWORD},
        headers=shop.app.headers,
    )
    assert paid.status_code == 201, paid.text  # -99.00
    refund = shop.client.post(
        "/v1/refunds",
        json={"order_id": bought["id"], "amount": 3000, "reason": "other"},
        headers=shop.app.headers,
    )
    assert refund.json()["status"] == "succeeded", refund.text  # +30.00
    # A refund the gateway refused, resolved by finance into the wallet: +99.00.
    elsewhere = shop.order()
    shop.confirm(shop.pay(elsewhere))
    payment_id = shop.get(f"/v1/orders/{elsewhere['id']}")["payment_id"]
    store = browser.app.state.channel_registry.adapter("test")._store  # type: ignore[attr-defined]
    with store._database.session_scope() as session:
        session.get(TestGatewayTrade, payment_id).status = "frozen"
    failed = shop.client.post(
        "/v1/refunds",
        json={"order_id": elsewhere["id"], "reason": "other"},
        headers=shop.app.headers,
    ).json()
    finance = build.staff(Role.FINANCE)
    resolved = shop.client.post(
        f"/v1/refunds/{failed['id']}/resolve", json={"method": "wallet"}, headers=finance.headers
    )
    assert resolved.status_code == 200, resolved.text
    assert balance(shop) == 23000
    logged_in_buyer(browser, shop)

    zh = browser.get("/me", headers=ZH).text

    wallet = re.search(r'<section class="card" id="wallet".*?</section>', zh, re.S)
    assert wallet is not None
    assert "我的知识币" in wallet.group(0)
    assert "余额: ¥230.00" in " ".join(visible_text(wallet.group(0)).split())
    assert _history(zh) == [
        ("payment", "支付", "-¥99.00", "¥101.00"),
        ("refund", "退款", "+¥30.00", "¥131.00"),
        ("refund_resolution", "退款转入钱包", "+¥99.00", "¥230.00"),
        ("top_up", "充值", "+¥200.00", "¥200.00"),
    ]
    for header in ("时间", "类型", "金额", "变动后余额"):
        assert header in wallet.group(0)
    # The top-up reads as one, and offers no refund (top-ups are not refunded on request).
    top_up_box = re.search(
        rf'<article class="order" id="order-{top_up_order["id"]}".*?</article>', zh, re.S
    )
    assert top_up_box is not None
    assert "知识币充值" in top_up_box.group(0)
    assert "申请退款" not in top_up_box.group(0)
    # The wallet payment's refund came back to the wallet, and says so.
    bought_box = re.search(
        rf'<article class="order" id="order-{bought["id"]}".*?</article>', zh, re.S
    )
    assert bought_box is not None
    assert "退款已退回知识币钱包" in bought_box.group(0)
    assert untranslated(zh) == []

    en = browser.get("/me?lang=en").text

    assert "My knowledge coins" in en
    assert "Balance: CN¥230.00" in " ".join(visible_text(en).split())
    assert _history(en) == [
        ("payment", "Payment", "-CN¥99.00", "CN¥101.00"),
        ("refund", "Refund", "+CN¥30.00", "CN¥131.00"),
        ("refund_resolution", "Refund paid to wallet", "+CN¥99.00", "CN¥230.00"),
        ("top_up", "Top-up", "+CN¥200.00", "CN¥200.00"),
    ]
    assert "Knowledge coins top-up" in en
    assert "Balance after" in en


def test_a_buyer_without_coins_sees_an_empty_wallet(browser: TestClient, shop: Shop) -> None:
    logged_in_buyer(browser, shop)
    zh = browser.get("/me", headers=ZH).text
    assert "我的知识币" in zh
    assert "¥0.00" in zh
    assert "暂无知识币明细" in zh
    assert "No knowledge-coin changes yet." in browser.get("/me?lang=en").text
    assert html.unescape(zh).count('class="wallet-change') == 0
