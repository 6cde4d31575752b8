"""The buyer-side pages over HTTP: languages, sessions, CSRF on every form, the cashier
(with the test channel), signed cashier links, and the buyer center with refunds."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.csrf import CSRF_COOKIE, SESSION_COOKIE
from knowpay.kit.db import Database
from knowpay.orders.models import Order
from knowpay.refunds import service as refunds_service
from knowpay.web import i18n
from tests.builders import Builders, Shop
from tests.web.helpers import csrf_of, login, untranslated

EN = {"Accept-Language": "en-US,en;q=0.9"}
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
    assert response.headers["location"] == "/me"


# ---------------------------------------------------------------------------------------
# Languages


def test_login_page_in_both_languages(browser: TestClient) -> None:
    zh = browser.get("/login", headers=ZH)
    en = browser.get("/login", headers=EN)
    assert zh.status_code == en.status_code == 200
    for text in ("登录", "邮箱", "密码", "简体中文", "English"):
        assert text in zh.text
    assert '<html lang="zh-CN">' in zh.text
    for text in ("Log in", "Email", "Password"):
        assert text in en.text
    assert '<html lang="en">' in en.text
    assert untranslated(zh.text) == []
    # Nothing in Accept-Language that knowpay speaks: Chinese, the default.
    assert "邮箱" in browser.get("/login", headers={"Accept-Language": "fr-FR"}).text
    # ?lang= wins over the header for this page.
    assert "Password" in browser.get("/login?lang=en", headers=ZH).text


def test_every_message_of_the_pages_has_a_chinese_translation() -> None:
    from babel.messages.extract import extract_from_dir

    web = i18n.TRANSLATIONS_DIR.parent
    catalog = i18n.read_catalog("zh_CN")
    missing = []
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(web),
        method_map=[
            ("console/**", "ignore"),
            ("templates/console/**", "ignore"),
            ("**.py", "python"),
            ("templates/**.html", "jinja2"),
        ],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "N_": None, "gettext": None},
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            entry = catalog.get(msgid)
            if msgid and (entry is None or not entry.string):
                missing.append(msgid)
    assert missing == []


def test_the_switcher_remembers_the_language_and_the_account_locale(
    browser: TestClient, shop: Shop
) -> None:
    logged_in_buyer(browser, shop)
    me = browser.get("/me", headers=ZH)
    assert "我的订单" in me.text
    switched = browser.post(
        "/lang",
        data={"lang": "en", "next": "/me", "csrf_token": csrf_of(me.text)},
        follow_redirects=False,
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == "/me"
    # The account's locale now says English, whatever the browser asks for.
    assert "My orders" in browser.get("/me", headers=ZH).text


# ---------------------------------------------------------------------------------------
# Sessions


def test_login_rotates_the_session_and_logout_ends_it(browser: TestClient, shop: Shop) -> None:
    browser.get("/login")
    anonymous = browser.cookies.get(SESSION_COOKIE)
    assert anonymous
    logged_in_buyer(browser, shop)
    after_login = browser.cookies.get(SESSION_COOKIE)
    assert after_login
    assert after_login != anonymous
    me = browser.get("/me")
    assert me.status_code == 200
    assert me.headers["cache-control"] == "no-store"
    out = browser.post("/logout", data={"csrf_token": csrf_of(me.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert browser.cookies.get(SESSION_COOKIE) not in (None, after_login)
    again = browser.get("/me", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/login?next=%2Fme"


def test_logout_ends_a_copy_of_the_session_cookie_too(
    app: FastAPI, browser: TestClient, shop: Shop
) -> None:
    """Found by a web audit: the cookie is signed, not stored, so a copy taken before the
    logout kept working for its 8 hours. No clock is involved (the test clock stands still):
    a logout raises the person's session generation."""
    logged_in_buyer(browser, shop)
    stolen = browser.cookies.get(SESSION_COOKIE)
    me = browser.get("/me")
    browser.post("/logout", data={"csrf_token": csrf_of(me.text)}, follow_redirects=False)
    with TestClient(app, raise_server_exceptions=False) as thief:
        thief.cookies.set(SESSION_COOKIE, stolen or "")
        replayed = thief.get("/me", follow_redirects=False)
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/login")
    logged_in_buyer(browser, shop)  # logging in again at once works
    assert browser.get("/me").status_code == 200


def test_session_cookie_flags(browser: TestClient) -> None:
    response = browser.get("/login")
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()


def test_wrong_password_says_so_in_the_page_language(browser: TestClient, shop: Shop) -> None:
    response = login(browser, shop.buyer.email, "not-the-password")
    assert response.status_code == 401
    assert "邮箱或密码错误" in response.text
    assert browser.get("/me", follow_redirects=False).status_code == 303


def test_a_forged_session_cookie_is_not_a_login(browser: TestClient, shop: Shop) -> None:
    logged_in_buyer(browser, shop)
    value = browser.cookies.get(SESSION_COOKIE) or ""
    payload, _, mac = value.partition(".")
    browser.cookies.set(SESSION_COOKIE, payload + "." + mac[:-2] + "AA")
    assert browser.get("/me", follow_redirects=False).status_code == 303


def test_staff_land_in_the_console_and_may_not_use_the_buyer_center(
    browser: TestClient, build: Builders
) -> None:
    finance = build.staff(Role.FINANCE)
    response = login(browser, finance.email, finance.password)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    page = browser.get("/me")
    assert page.status_code == 403
    assert "您的账号无权访问此页面" in page.text


def test_login_sends_back_to_next_but_never_off_site(browser: TestClient, shop: Shop) -> None:
    order = shop.order()
    response = login(browser, shop.buyer.email, shop.buyer.password, f"/pay/{order['id']}")
    assert response.headers["location"] == f"/pay/{order['id']}"
    browser.post("/logout", data={"csrf_token": csrf_of(browser.get("/me").text)})
    response = login(browser, shop.buyer.email, shop.buyer.password, "//evil.example/x")
    assert response.headers["location"] == "/me"


# ---------------------------------------------------------------------------------------
# CSRF: every form refuses a missing token


def test_every_form_refuses_a_missing_csrf_token(browser: TestClient, shop: Shop) -> None:
    order = shop.order()
    browser.get("/login")  # the anonymous pre-session: the login form is checked too
    refused = browser.post("/login", data={"email": shop.buyer.email, "password": "x"})
    assert refused.status_code == 403
    assert 'data-code="csrf_failed"' in refused.text
    logged_in_buyer(browser, shop)
    forms: list[tuple[str, dict[str, Any]]] = [
        ("/logout", {}),
        ("/lang", {"lang": "en"}),
        (f"/pay/{order['id']}/payments", {"channel": "test"}),
        (f"/pay/{order['id']}/again", {}),
        ("/me/refunds", {"order_id": order["id"], "reason": "other"}),
        ("/login", {"email": shop.buyer.email, "password": shop.buyer.password}),
    ]
    for path, data in forms:
        response = browser.post(path, data=data, follow_redirects=False)
        assert response.status_code == 403, path
        assert 'data-code="csrf_failed"' in response.text, path
        # A token from another session does not do either.
        response = browser.post(
            path, data={**data, "csrf_token": "forged.token"}, follow_redirects=False
        )
        assert response.status_code == 403, path
    assert browser.get("/me").status_code == 200  # still logged in: no form did anything


# ---------------------------------------------------------------------------------------
# The cashier


def test_the_cashier_shows_the_order_and_its_channels(browser: TestClient, shop: Shop) -> None:
    order = shop.order()
    logged_in_buyer(browser, shop)
    zh = browser.get(f"/pay/{order['id']}", headers=ZH)
    assert zh.status_code == 200
    for text in (
        "收银台",
        "数据分析 30 讲",
        "课程",
        "¥99.00",
        "选择支付方式",
        "测试支付",
        "安全提示",
        "请在",
    ):
        assert text in zh.text, text
    assert "/static/cashier.js" in zh.text
    assert "<script>" not in zh.text  # strict CSP: no inline script at all
    assert untranslated(zh.text) == []
    en = browser.get(f"/pay/{order['id']}?lang=en")
    for text in ("Checkout", "CN¥99.00", "Choose how to pay", "Test payment", "Pay safely"):
        assert text in en.text, text
    # No secret in the page.
    assert "kp_" not in zh.text
    assert "secret" not in zh.text.lower()


def test_paying_from_the_cashier_flips_to_success(browser: TestClient, shop: Shop) -> None:
    order = shop.order()
    logged_in_buyer(browser, shop)
    page = browser.get(f"/pay/{order['id']}")
    chosen = browser.post(
        f"/pay/{order['id']}/payments",
        data={"channel": "test", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert chosen.status_code == 303
    assert chosen.headers["location"] == f"/pay/{order['id']}"
    waiting = browser.get(f"/pay/{order['id']}")
    assert "等待支付" in waiting.text
    assert browser.get(f"/pay/{order['id']}/status").json()["state"] == "pending"
    [payment] = shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    assert payment["channel"] == "test"
    shop.confirm(payment)
    status = browser.get(f"/pay/{order['id']}/status").json()
    assert status["state"] == "paid"
    done = browser.get(f"/pay/{order['id']}")
    assert "支付成功" in done.text
    assert 'href="/me#content"' in done.text


def test_a_language_chosen_by_the_link_stays_through_paying(
    browser: TestClient, shop: Shop
) -> None:
    """Found by a browser audit: `/pay/{id}?lang=en` was English until the buyer chose a
    channel; the redirect back (and the live reload) dropped `lang` and the page was Chinese."""
    order = shop.order()
    logged_in_buyer(browser, shop)  # the account's locale is zh_CN
    page = browser.get(f"/pay/{order['id']}?lang=en")
    assert "Choose how to pay" in page.text
    action = re.search(r'<form method="post" action="([^"]+)" class="channels">', page.text)
    assert action is not None
    assert html.unescape(action.group(1)) == f"/pay/{order['id']}/payments?lang=en"
    chosen = browser.post(
        html.unescape(action.group(1)),
        data={"channel": "test", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert chosen.headers["location"] == f"/pay/{order['id']}?lang=en"
    waiting = browser.get(chosen.headers["location"])
    assert "Waiting for your payment" in waiting.text


def test_a_second_payment_sent_back_is_not_shown_as_a_refund_the_buyer_asked_for(
    browser: TestClient, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    """Found by a browser audit: the automatic refund of a duplicate payment appeared in the
    buyer center as "Refund … Requested", a request the buyer never made."""
    order = shop.order()
    first, second = shop.pay(order), shop.pay(order)
    shop.confirm(first)
    shop.confirm(second)
    with database.session_scope() as session:
        assert refunds_service.start_duplicate_refund(session, second["id"], clock.now())
    logged_in_buyer(browser, shop)
    page = browser.get("/me")
    assert "重复付款退回" in page.text
    assert "您为该订单付了两次款" in page.text
    assert "已提交退款申请" not in page.text


def test_a_failed_payment_says_why_and_offers_a_retry(browser: TestClient, shop: Shop) -> None:
    order = shop.order()
    shop.pay(order, test_outcome="failed")
    logged_in_buyer(browser, shop)
    page = browser.get(f"/pay/{order['id']}", headers=ZH)
    assert "支付失败" in page.text
    assert "支付被拒绝" in page.text  # test_declined, in plain words
    assert "重新支付" in page.text
    assert 'name="channel" value="test"' in page.text


def test_an_expired_order_says_so_and_starts_again(
    browser: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    order = shop.order(expires_in=60)
    logged_in_buyer(browser, shop)
    clock.advance(timedelta(minutes=2))
    shop.buyer = shop.build.relogin(shop.buyer)
    page = browser.get(f"/pay/{order['id']}")
    assert "订单已过期" in page.text
    again = browser.post(
        f"/pay/{order['id']}/again",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    new_id = again.headers["location"].removeprefix("/pay/")
    assert new_id != order["id"]
    fresh = browser.get(again.headers["location"])
    assert "选择支付方式" in fresh.text
    assert "¥99.00" in fresh.text


def test_an_order_its_app_closed_says_closed_not_expired(browser: TestClient, shop: Shop) -> None:
    """Found by a browser audit: an order the app closed with half an hour left was shown as
    expired ("the time to pay this order is over")."""
    order = shop.order()
    closed = shop.client.post(f"/v1/orders/{order['id']}/close", headers=shop.app.headers)
    assert closed.json()["status"] == "closed"
    logged_in_buyer(browser, shop)
    page = browser.get(f"/pay/{order['id']}")
    assert "订单已关闭" in page.text
    assert "订单已过期" not in page.text
    assert "重新下单" in page.text  # Start again


def test_another_buyers_order_is_not_found(
    browser: TestClient, shop: Shop, build: Builders
) -> None:
    order = shop.order()
    other = build.buyer(shop.app)
    login(browser, other.email, other.password)
    page = browser.get(f"/pay/{order['id']}")
    assert page.status_code == 404
    assert "找不到该订单" in page.text
    assert browser.get(f"/pay/{order['id']}/status").status_code == 403
    page_text = browser.get("/me").text
    assert order["id"] not in page_text


def test_the_cashier_needs_a_login_or_a_link(browser: TestClient, shop: Shop) -> None:
    order = shop.order()
    response = browser.get(f"/pay/{order['id']}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=%2Fpay%2F{order['id']}"


# ---------------------------------------------------------------------------------------
# Signed cashier links


def cashier_link(browser: TestClient, shop: Shop, order_id: str) -> dict[str, Any]:
    response = browser.post(f"/v1/orders/{order_id}/cashier-link", headers=shop.app.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_cashier_link_opens_that_order_only(
    browser: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    order, other = shop.order(), shop.order()
    link = cashier_link(browser, shop, order["id"])
    assert link["url"].startswith(f"http://testserver/pay/{order['id']}?t=")
    assert link["expires_at"]
    path = link["url"].removeprefix("http://testserver")
    page = browser.get(path)
    assert page.status_code == 200
    assert "选择支付方式" in page.text
    # The link is remembered for this order's cashier (the gateway sends the buyer back
    # without it), and pays through the same code path.
    assert browser.get(f"/pay/{order['id']}").status_code == 200
    paid = browser.post(
        f"/pay/{order['id']}/payments",
        data={"channel": "test", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert paid.status_code == 303
    assert browser.get(f"/pay/{order['id']}/status").json()["state"] == "pending"
    # Not another order, and not the buyer center.
    token = path.split("?t=")[1]
    assert browser.get(f"/pay/{other['id']}?t={token}").status_code == 403
    assert browser.get(f"/pay/{other['id']}", follow_redirects=False).status_code == 303
    assert browser.get("/me", follow_redirects=False).status_code == 303


def test_a_tampered_or_expired_link_is_refused(
    browser: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    order = shop.order()
    link = cashier_link(browser, shop, order["id"])
    path = link["url"].removeprefix("http://testserver")
    expires, mac = path.split("?t=")[1].split(".")
    tampered = browser.get(f"/pay/{order['id']}?t={int(expires) + 3600}.{mac}")
    assert tampered.status_code == 403
    assert "支付链接无效或已过期" in tampered.text
    assert browser.get(f"/pay/{order['id']}?t={expires}.{mac[:-1]}x").status_code == 403
    clock.advance(timedelta(minutes=16))
    assert browser.get(path).status_code == 403


def test_a_tampered_link_is_refused_even_after_a_valid_one_was_opened(
    browser: TestClient, shop: Shop
) -> None:
    """The valid link's cookie must not vouch for a tampered `?t=` (docs/web.md: 403)."""
    order = shop.order()
    path = cashier_link(browser, shop, order["id"])["url"].removeprefix("http://testserver")
    assert browser.get(path).status_code == 200
    expires, mac = path.split("?t=")[1].split(".")
    tampered = f"{expires}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}"
    page = browser.get(f"/pay/{order['id']}?t={tampered}")
    assert page.status_code == 403
    assert "支付链接无效或已过期" in page.text
    assert browser.get(f"/pay/{order['id']}/status?t={tampered}").status_code == 403
    # The kept cookie still lets the buyer back in without a link.
    assert browser.get(f"/pay/{order['id']}").status_code == 200


@pytest.mark.parametrize("expires", ["9" * 5000, "\u00b2"], ids=["5000-digits", "superscript"])
def test_a_link_whose_expiry_is_no_plain_number_is_refused_not_a_500(
    browser: TestClient, shop: Shop, expires: str
) -> None:
    """Found by a web fuzz: `str.isdigit()` let through "²" and 5,000 digits, on which
    int() raised, so the cashier, its status and a planted link cookie answered 500."""
    order = shop.order()
    token = quote(f"{expires}.mac", safe="")
    assert browser.get(f"/pay/{order['id']}?t={token}").status_code == 403
    assert browser.get(f"/pay/{order['id']}/status?t={token}").status_code == 403
    browser.cookies.set("knowpay_cashier", "9" * 5000 + ".mac")
    status = browser.get(f"/pay/{order['id']}/status")
    assert status.status_code == 403, status.text
    assert status.json() == {"state": "unauthorized"}


def test_only_the_orders_app_may_make_a_link(
    browser: TestClient, shop: Shop, build: Builders
) -> None:
    order = shop.order()
    stranger = build.app("other")
    response = browser.post(f"/v1/orders/{order['id']}/cashier-link", headers=stranger.headers)
    assert response.status_code == 404
    response = browser.post(f"/v1/orders/{order['id']}/cashier-link", headers=shop.buyer.headers)
    assert response.status_code == 403
    schema = browser.get("/openapi.json").json()
    operation = schema["paths"]["/v1/orders/{order_id}/cashier-link"]["post"]
    assert "CashierLinkOut" in str(operation["responses"]["200"])


# ---------------------------------------------------------------------------------------
# The buyer center


def paid_order(shop: Shop) -> dict[str, Any]:
    order = shop.order()
    shop.pay(order, test_outcome="succeeded")
    return order


def test_the_buyer_center_lists_orders_and_content(browser: TestClient, shop: Shop) -> None:
    order = paid_order(shop)
    unpaid = shop.order()
    logged_in_buyer(browser, shop)
    zh = browser.get("/me", headers=ZH)
    for text in ("我的内容", "我的订单", "已支付", "待支付", "去支付", "永久有效", "申请退款"):
        assert text in zh.text, text
    assert f'href="/pay/{unpaid["id"]}"' in zh.text
    assert untranslated(zh.text) == []
    en = browser.get("/me?lang=en")
    for text in ("My content", "My orders", "Paid", "Waiting for payment", "Ask for a refund"):
        assert text in en.text, text
    [entitlement] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    content = browser.get(f"/me/content/{entitlement['id']}")
    assert content.status_code == 200
    assert "您已开通此内容" in content.text
    assert order["id"] in zh.text


def test_a_link_from_another_site_does_not_note_an_opening_until_the_buyer_presses_open(
    browser: TestClient, shop: Shop
) -> None:
    """An opening costs the buyer the refund of unopened content: a cross-site link (or an
    image a page embeds) must not note one for them."""
    paid_order(shop)
    logged_in_buyer(browser, shop)
    [entitlement] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    path = f"/me/content/{entitlement['id']}"

    linked = browser.get(path, headers={**ZH, "Sec-Fetch-Site": "cross-site"})

    assert linked.status_code == 200
    assert "打开" in linked.text
    assert "您已开通此内容" not in linked.text
    [still] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    assert still["first_accessed_at"] is None
    pressed = browser.post(
        path, data={"csrf_token": csrf_of(linked.text)}, headers=ZH, follow_redirects=False
    )
    assert (pressed.status_code, pressed.headers["location"]) == (303, path)  # a reload is a GET
    [noted] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    assert noted["first_accessed_at"] is not None
    opened = browser.get(path, headers={**ZH, "Sec-Fetch-Site": "same-origin"})
    assert "您已开通此内容" in opened.text


def test_opening_from_knowpays_own_pages_notes_the_opening_at_once(
    browser: TestClient, shop: Shop
) -> None:
    paid_order(shop)
    logged_in_buyer(browser, shop)
    [entitlement] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]

    browser.get(f"/me/content/{entitlement['id']}", headers={"Sec-Fetch-Site": "same-origin"})

    [noted] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    assert noted["first_accessed_at"] is not None


def test_the_open_button_needs_the_pages_csrf_token(browser: TestClient, shop: Shop) -> None:
    paid_order(shop)
    logged_in_buyer(browser, shop)
    [entitlement] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]

    forged = browser.post(f"/me/content/{entitlement['id']}", data={})

    assert forged.status_code == 403
    [still] = shop.get(f"/v1/entitlements?user_id={shop.buyer.id}")["data"]
    assert still["first_accessed_at"] is None


def test_a_refund_request_from_the_buyer_center(browser: TestClient, shop: Shop) -> None:
    order = paid_order(shop)
    logged_in_buyer(browser, shop)
    page = browser.get("/me")
    response = browser.post(
        "/me/refunds",
        data={
            "order_id": order["id"],
            "reason": "no_longer_needed",
            "reason_text": "",
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "refunded=1" in response.headers["location"]
    [refund] = shop.get(f"/v1/refunds?order_id={order['id']}")["data"]
    assert refund["reason"] == "no_longer_needed"
    zh = browser.get("/me", headers=ZH)
    assert "已提交退款申请" in zh.text
    # Small and unused: approved at once, and the test gateway pays back.
    steps = [entry["step"] for entry in refund["timeline"]]
    if "money_returned" in steps:
        assert "退款已到账" in zh.text
    en = browser.get("/me?lang=en")
    assert "Requested" in en.text
    assert untranslated(zh.text) == []
    # A second request for the same order: no second form, and the service says no.
    again = browser.post(
        "/me/refunds",
        data={"order_id": order["id"], "reason": "other", "csrf_token": csrf_of(zh.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert "error=" in again.headers["location"]


def test_a_nul_character_gets_the_error_page_not_the_apis_json(
    browser: TestClient, shop: Shop
) -> None:
    """Found by a web fuzz: the database refuses a NUL (422 unstorable_value), and a page
    that met one, in a form or in its address, answered with the API's problem+json."""
    order = paid_order(shop)
    logged_in_buyer(browser, shop)
    page = browser.get("/me")
    refused = browser.post(
        "/me/refunds",
        data={
            "order_id": order["id"],
            "reason": "other",
            "reason_text": "a\x00b",
            "csrf_token": csrf_of(page.text),
        },
        headers=ZH,
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    assert i18n.make_gettext("zh_CN")("Some of the details you entered are not valid.") in (
        refused.text
    )
    assert shop.get(f"/v1/refunds?order_id={order['id']}")["data"] == []
    cashier = browser.get("/pay/ord_%00", headers=ZH)
    assert cashier.status_code == 422
    assert cashier.headers["content-type"].startswith("text/html")


def test_a_buyer_cannot_refund_another_buyers_order(
    browser: TestClient, shop: Shop, build: Builders
) -> None:
    order = paid_order(shop)
    other = build.buyer(shop.app)
    login(browser, other.email, other.password)
    page = browser.get("/me")
    response = browser.post(
        "/me/refunds",
        data={"order_id": order["id"], "reason": "other", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.headers["location"].startswith("/me?error=order_not_found")
    assert shop.get(f"/v1/refunds?order_id={order['id']}")["data"] == []


def test_static_files_are_served_locally(browser: TestClient) -> None:
    assert browser.get("/static/knowpay.css").headers["content-type"].startswith("text/css")
    assert browser.get("/static/cashier.js").status_code == 200
    assert browser.get("/static/icons/alipay.svg").status_code == 200
    assert browser.get("/static/../session.py").status_code == 404
    assert browser.get("/static/%2e%2e/session.py").status_code == 404
    # Found by a web audit: these were 500s (a NUL, a name too long for the file system).
    for odd in ("/static/knowpay.css%00.js", "/static/%00", "/static/" + "A" * 5000):
        assert browser.get(odd).status_code == 404, odd


def test_csrf_cookie_is_reused_across_pages(browser: TestClient, shop: Shop) -> None:
    logged_in_buyer(browser, shop)
    first = browser.get("/me")
    second = browser.get("/me")
    assert csrf_of(first.text) == csrf_of(second.text) == browser.cookies.get(CSRF_COOKIE)


def _logged_out_elsewhere(app: FastAPI, shop: Shop) -> None:
    """The buyer logs out on another device: every page session of theirs ends."""
    with TestClient(app, raise_server_exceptions=False) as other:
        logged_in_buyer(other, shop)
        other.post("/logout", data={"csrf_token": csrf_of(other.get("/me").text)})


def test_a_form_posted_after_the_session_ended_logs_in_back_to_the_form_page(
    app: FastAPI, browser: TestClient, shop: Shop, build: Builders
) -> None:
    """Found by a web audit: `next` was the POST-only path of the form, so after login the
    browser opened it with a GET and got a 405."""
    order = paid_order(shop)
    logged_in_buyer(browser, shop)
    token = csrf_of(browser.get("/me").text)
    _logged_out_elsewhere(app, shop)
    expected = {
        "/me/refunds": "/me",
        f"/pay/{order['id']}/payments": f"/pay/{order['id']}",
        f"/pay/{order['id']}/again": f"/pay/{order['id']}",
    }
    for path, page in expected.items():
        answer = browser.post(
            path,
            data={"csrf_token": token, "order_id": order["id"], "channel": "test"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, (path, answer.text)
        assert answer.headers["location"] == "/login?next=" + quote(page, safe=""), path
        back = login(browser, shop.buyer.email, shop.buyer.password, next_url=page)
        assert back.headers["location"] == page
        assert browser.get(page).status_code == 200, page
        token = csrf_of(browser.get("/me").text)
        _logged_out_elsewhere(app, shop)
    assert shop.get(f"/v1/refunds?order_id={order['id']}")["data"] == []  # nothing happened
    staff = build.staff(Role.FINANCE)
    console = TestClient(app, raise_server_exceptions=False)
    login(console, staff.email, staff.password)
    token = csrf_of(console.get("/admin/refunds").text)
    console.post("/logout", data={"csrf_token": token})
    token = csrf_of(console.get("/login").text)
    for path, page in {
        "/admin/refunds/rf_1/approve": "/admin/refunds",
        "/admin/risk/rd_1/release": "/admin/risk",
        "/admin/limits/lim_1": "/admin/limits",
        "/admin/limits": "/admin/limits",
    }.items():
        answer = console.post(path, data={"csrf_token": token}, follow_redirects=False)
        assert answer.headers["location"] == "/login?next=" + quote(page, safe=""), path
    # A GET still comes back to itself, query and all.
    answer = console.get("/admin/audit?action=x", follow_redirects=False)
    assert answer.headers["location"] == "/login?next=" + quote("/admin/audit?action=x", safe="")


def test_a_refunded_order_says_refunded_not_payment_successful(
    browser: TestClient, shop: Shop
) -> None:
    """Found by a web audit: a refunded order's cashier said "Payment successful – your
    content is ready" and its status said `paid`."""
    order = paid_order(shop)
    logged_in_buyer(browser, shop)
    for amount, state, title_zh, title_en in (
        (3000, "partially_refunded", "此订单已部分退款", "This order was partly refunded"),
        (None, "refunded", "此订单已退款", "This order was refunded"),
    ):
        asked = shop.client.post(
            "/v1/refunds",
            json={"order_id": order["id"], "reason": "other", "amount": amount},
            headers=shop.buyer.headers,
        )
        assert asked.status_code == 201, asked.text
        assert shop.get(f"/v1/orders/{order['id']}")["status"] == state
        status = browser.get(f"/pay/{order['id']}/status").json()
        assert (status["state"], status["order_status"]) == (state, state)
        zh = browser.get(f"/pay/{order['id']}", headers=ZH).text
        assert title_zh in zh
        assert "支付成功" not in zh
        assert untranslated(zh) == []
        en = browser.get(f"/pay/{order['id']}?lang=en").text
        assert title_en in en
        assert "Payment successful" not in en
    assert "已向您退回 ¥99.00。" in browser.get(f"/pay/{order['id']}", headers=ZH).text


def test_start_again_twice_leads_to_the_one_order_it_made(
    app: FastAPI, browser: TestClient, shop: Shop, clock: FrozenClock, database: Database
) -> None:
    """Found by a web audit: each POST /pay/{id}/again made another new order."""
    order = shop.order(expires_in=60)
    logged_in_buyer(browser, shop)
    clock.advance(timedelta(minutes=2))
    token = csrf_of(browser.get(f"/pay/{order['id']}").text)

    def again(_: int) -> str:
        answer = browser.post(
            f"/pay/{order['id']}/again", data={"csrf_token": token}, follow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        location: str = answer.headers["location"]
        return location

    with ThreadPoolExecutor(max_workers=2) as pool:  # two at once, then one more
        locations = {*pool.map(again, range(2)), again(2)}
    assert len(locations) == 1
    with database.session_scope(read_only=True) as session:
        restarts = session.scalars(
            select(Order.id).where(Order.metadata_json.contains(order["id"]))
        ).all()
    assert [f"/pay/{new_id}" for new_id in restarts] == list(locations)


@pytest.mark.parametrize("path", ["/me/typo", "/admin/typo", "/pay/a/b", "/admin/orders/x/y"])
def test_an_unknown_page_path_gets_the_404_page_in_the_visitors_language(
    browser: TestClient, path: str
) -> None:
    answer = browser.get(path, headers=ZH)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert i18n.make_gettext("zh_CN")("We could not find that page.") in answer.text
    assert untranslated(answer.text) == []


@pytest.mark.parametrize("path", ["/v1/typo", "/notify/typo", "/v1/orders/x/typo", "/typo"])
def test_an_unknown_api_path_keeps_its_problem_json(browser: TestClient, path: str) -> None:
    answer = browser.get(path, headers=ZH)
    assert answer.status_code in (404, 405)  # GET /notify/{gateway}: a POST-only route
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_get_of_a_form_only_page_path_gets_the_page_not_json(browser: TestClient) -> None:
    answer = browser.get("/me/refunds", headers=ZH)
    assert answer.status_code == 405
    assert answer.headers["content-type"].startswith("text/html")


def test_another_method_on_a_page_path_keeps_the_apis_405_with_its_allow_header(
    browser: TestClient,
) -> None:
    """Found in review: an OPTIONS (a CORS preflight) got the HTML "not found" page, 405
    without Allow."""
    answer = browser.options("/me/refunds")
    assert answer.status_code == 405
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "POST" in answer.headers["allow"]


def test_a_refused_form_gets_the_expired_form_page_in_the_visitors_language(
    browser: TestClient, shop: Shop
) -> None:
    """Found by a web audit: a Chinese page's form with a stale token got raw English
    problem+json."""
    order = paid_order(shop)
    logged_in_buyer(browser, shop)
    refused = browser.post(
        "/me/refunds",
        data={"order_id": order["id"], "reason": "other", "csrf_token": "stale.token"},
        headers=ZH,
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert "表单已过期，请刷新页面后重试。" in refused.text
    assert untranslated(refused.text) == []
    # The page hands out a token that works.
    again = browser.post(
        "/me/refunds",
        data={"order_id": order["id"], "reason": "other", "csrf_token": csrf_of(refused.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    # The API keeps its problem+json.
    api = browser.post("/v1/refunds", json={"order_id": order["id"]}, headers={"X-CSRF-Token": "x"})
    assert api.status_code == 403
    assert api.json()["code"] == "csrf_failed"


def test_start_again_on_an_expired_top_up_makes_a_top_up_of_the_same_amount(
    browser: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    """A top-up has no items to order again: it used to be a 500 (an empty OrderCreate)."""
    made = shop.client.post(
        "/v1/wallet/top-ups",
        json={"user_id": shop.buyer.id, "amount": 3000, "currency": "CNY", "expires_in": 60},
        headers=shop.app.headers,
    )
    assert made.status_code == 201, made.text
    top_up = made.json()
    logged_in_buyer(browser, shop)
    clock.advance(timedelta(minutes=2))
    token = csrf_of(browser.get(f"/pay/{top_up['id']}").text)
    answer = browser.post(
        f"/pay/{top_up['id']}/again", data={"csrf_token": token}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    new_id = answer.headers["location"].removeprefix("/pay/")
    again = shop.get(f"/v1/orders/{new_id}")
    assert (again["kind"], again["amount"], again["status"]) == ("top_up", 3000, "created")
    assert again["metadata"] == {"restarted_from": top_up["id"]}
