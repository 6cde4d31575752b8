"""Subscriptions on the pages: the buyer center (/me) shows a buyer their own subscriptions in
their language (status, price per period, the period paid for, the next renewal; a failing
renewal's reason and its order to pay at the cashier), whose forms cancel at the period's
end and resume, CSRF-checked; the console (/admin/subscriptions) lists them for every staff
role, newest first, by status and a page at a time, where admin and support cancel one (now
or at the period's end) and finance only reads; buyers, apps and strangers get no console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.masking import mask_email
from knowpay.subscriptions.tasks import RenewalContext, renew_subscriptions
from knowpay.web.console import subscriptions as console_subscriptions
from knowpay.web.templating import format_when
from tests.builders import Builders, Caller, Shop
from tests.web import helpers
from tests.web.test_console import csrf_of, staff_browser, untranslated, web_client, web_login

PASSWORD = "246810"
PRICE = 3000
TITLE = "数据分析会员"  # no catalog message, so the untranslated checks read only ours
ROW = re.compile(r'<tr id="subscription-(sub_[A-Za-z0-9]+)">(.*?)</tr>', re.S)


class Members(Shop):
    """A shop selling a 30-day membership; its buyers subscribe with coins in their wallet."""

    def __init__(self, build: Builders, app: FastAPI) -> None:
        super().__init__(build)
        self.clock = build.clock
        self.membership = build.product(
            self.app,
            title=TITLE,
            kind="membership",
            period_days=30,
            prices=[{"amount": PRICE, "currency": "CNY"}],
        )
        self.renewals = RenewalContext(
            database=build.database,
            clock=build.clock,
            subscriptions=app.state.subscriptions_context,
        )
        self.finance = build.staff(Role.FINANCE)

    def member(self, buyer: Caller | None = None, coins: int = 10 * PRICE) -> dict[str, Any]:
        """The buyer (ours by default), with a payment password and coins, subscribed."""
        buyer = buyer or self.buyer
        answer = self.client.put(
            "/v1/users/me/payment-password",
            json={"new_password": PASSWORD},
            headers=buyer.headers,
        )
        assert answer.status_code == 200, answer.text
        top_up = self.client.post(
            "/v1/wallet/top-ups",
            json={"user_id": buyer.id, "amount": coins, "currency": "CNY"},
            headers=self.app.headers,
        )
        assert top_up.status_code == 201, top_up.text
        self.confirm(self.pay(top_up.json()))
        made = self.client.post(
            "/v1/subscriptions",
            json={
                "user_id": buyer.id,
                "product_id": self.membership["id"],
                "currency": "CNY",
                "payment_password": PASSWORD,
            },
            headers=self.app.headers,
        )
        assert made.status_code == 201, made.text
        subscription: dict[str, Any] = made.json()
        return subscription

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.get(f"/v1/subscriptions/{subscription_id}")

    def at(self, moment: str) -> None:
        """The clock moves to an RFC 3339 time the API answered."""
        self.clock.advance(_moment(moment) - self.clock.now())

    def failing(self, subscription: dict[str, Any]) -> dict[str, Any]:
        """The renewal's time comes and the wallet cannot pay it: past due."""
        self.at(subscription["next_attempt_at"])
        assert renew_subscriptions(self.renewals).get("failed") == 1
        failing = self.subscription(subscription["id"])
        assert failing["status"] == "past_due"
        return failing


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def members(build: Builders, app: FastAPI) -> Members:
    return Members(build, app)


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    """A browser of its own: its cookies never ride along on the builders' API calls."""
    with web_client(app) as test_client:
        yield test_client


def logged_in(browser: TestClient, buyer: Caller) -> None:
    answer = helpers.login(browser, buyer.email, buyer.password)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/me"


def me_page(browser: TestClient, lang: str = "zh_CN") -> str:
    page = browser.get("/me", params={"lang": lang})
    assert page.status_code == 200, page.text[:300]
    return str(page.text)


def section(page: str) -> str:
    found = re.search(r'<section class="card" id="subscriptions".*?</section>', page, re.S)
    assert found is not None, "no subscriptions section"
    return found.group(0)


def card(page: str, subscription_id: str) -> str:
    found = re.search(
        rf'<article [^>]*id="subscription-{subscription_id}".*?</article>', page, re.S
    )
    assert found is not None, f"no card for {subscription_id}"
    return found.group(0)


def words(page: str) -> str:
    return " ".join(helpers.visible_text(page).split())


def when(value: str, locale: str) -> str:
    """A time as the page shows it (in the platform's zone), spaced as `words` reads it."""
    return " ".join(format_when(_moment(value), "Asia/Shanghai", locale=locale).split())


def followed(browser: TestClient, location: str, lang: str = "zh_CN") -> str:
    """The page a form's redirect leads to, in `lang` (its query kept, its #anchor dropped)."""
    page = browser.get(location.split("#", 1)[0] + f"&lang={lang}")
    assert page.status_code == 200, page.text[:300]
    return str(page.text)


def post_form(browser: TestClient, path: str, token: str, **fields: str) -> Any:
    return browser.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)


# The buyer center ----------------------------------------------------------------------------


def test_the_buyer_sees_their_subscription_in_both_languages_and_not_another_buyers(
    app: FastAPI, browser: TestClient, members: Members, build: Builders
) -> None:
    mine = members.member()
    neighbour = build.buyer(members.app)
    theirs = members.member(neighbour)
    logged_in(browser, members.buyer)

    zh = me_page(browser)
    shown = section(zh)
    assert "我的订阅" in shown
    assert theirs["id"] not in zh
    assert re.findall(r'data-subscription-id="([^"]+)"', zh) == [mine["id"]]
    text = words(card(zh, mine["id"]))
    for chinese in (
        TITLE,
        "每 30 天 ¥30.00",
        "生效中",
        f"已付费至 {when(mine['current_period_end'], 'zh_CN')}",
        f"下次用知识币续费：{when(mine['next_attempt_at'], 'zh_CN')}",
        "到期后取消",
    ):
        assert chinese in text, chinese
    assert f'action="/me/subscriptions/{mine["id"]}/cancel"' in zh
    assert f'action="/me/subscriptions/{mine["id"]}/resume"' not in zh
    assert helpers.untranslated(zh) == []

    en = words(card(me_page(browser, "en"), mine["id"]))
    for english in (
        "CN¥30.00 every 30 days",
        "Active",
        f"Paid until {when(mine['current_period_end'], 'en')}",
        f"Next renewal from your knowledge coins: {when(mine['next_attempt_at'], 'en')}",
        "Cancel at period end",
    ):
        assert english in en, english

    # The other buyer sees theirs alone.
    other = web_client(app)
    logged_in(other, neighbour)
    page = me_page(other)
    assert re.findall(r'data-subscription-id="([^"]+)"', page) == [theirs["id"]]


def test_a_buyer_without_subscriptions_sees_an_empty_section(
    browser: TestClient, members: Members
) -> None:
    logged_in(browser, members.buyer)
    assert "暂无订阅" in section(me_page(browser))
    assert "No subscriptions." in section(me_page(browser, "en"))


def test_the_buyer_cancels_at_the_period_end_and_resumes_with_the_forms(
    browser: TestClient, members: Members
) -> None:
    subscription = members.member()
    logged_in(browser, members.buyer)
    token = csrf_of(me_page(browser))
    path = f"/me/subscriptions/{subscription['id']}"

    canceled = post_form(browser, f"{path}/cancel", token)
    assert canceled.status_code == 303, canceled.text
    assert canceled.headers["location"] == (
        f"/me?subscription=ending#subscription-{subscription['id']}"
    )
    api = members.subscription(subscription["id"])
    assert (api["status"], api["cancel_at_period_end"]) == ("active", True)
    assert api["next_attempt_at"] == api["current_period_end"]  # no renewal, the end
    page = followed(browser, canceled.headers["location"])
    assert "你的订阅将在已付费的周期结束时终止，不会再续费。" in page
    shown = words(card(page, subscription["id"]))
    assert "本期结束后终止" in shown
    assert f"将于 {when(api['current_period_end'], 'zh_CN')} 终止，不会再续费。" in shown
    assert "下次用知识币续费" not in shown
    assert f'action="{path}/cancel"' not in page
    assert f'action="{path}/resume"' in page
    assert helpers.untranslated(page) == []

    resumed = post_form(browser, f"{path}/resume", token)
    assert resumed.status_code == 303, resumed.text
    assert resumed.headers["location"] == (
        f"/me?subscription=resumed#subscription-{subscription['id']}"
    )
    api = members.subscription(subscription["id"])
    assert (api["status"], api["cancel_at_period_end"]) == ("active", False)
    assert api["next_attempt_at"] == subscription["next_attempt_at"]  # renews as before
    page = followed(browser, resumed.headers["location"], "en")
    assert "Your subscription will renew again at the end of the period." in page
    assert f'action="{path}/cancel"' in page

    # A form sent twice (a second tab): refused in words, nothing changes.
    again = post_form(browser, f"{path}/resume", token)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/me?error=subscription_not_changeable")
    assert "该订阅现在无法更改" in followed(browser, again.headers["location"])
    assert members.subscription(subscription["id"])["cancel_at_period_end"] is False


def test_the_forms_need_the_csrf_token_and_the_buyers_own_subscription(
    app: FastAPI, browser: TestClient, members: Members, build: Builders
) -> None:
    subscription = members.member()
    path = f"/me/subscriptions/{subscription['id']}"
    logged_in(browser, members.buyer)
    me_page(browser)
    for action in ("cancel", "resume"):
        forged = browser.post(f"{path}/{action}", data={}, follow_redirects=False)
        assert forged.status_code == 403, action
        assert 'data-code="csrf_failed"' in forged.text
        wrong = browser.post(f"{path}/{action}", data={"csrf_token": "x"}, follow_redirects=False)
        assert wrong.status_code == 403, action

    # Another buyer, with their own valid token: not found, and nothing changes.
    stranger = web_client(app)
    logged_in(stranger, build.buyer(members.app))
    refused = post_form(stranger, f"{path}/cancel", csrf_of(me_page(stranger)))
    assert refused.status_code == 303
    assert refused.headers["location"].startswith("/me?error=subscription_not_found")
    assert "找不到该订阅。" in followed(stranger, refused.headers["location"])

    # Staff do not use the buyer center's forms; nobody logged in is sent to log in.
    staff, _ = staff_browser(app, build, Role.ADMIN)
    token = csrf_of(staff.get("/admin").text)
    assert post_form(staff, f"{path}/cancel", token).status_code == 403
    nobody = web_client(app)
    token = csrf_of(nobody.get("/login").text)
    answer = post_form(nobody, f"{path}/cancel", token)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fme"

    api = members.subscription(subscription["id"])
    assert (api["status"], api["cancel_at_period_end"]) == ("active", False)


def test_a_failing_renewal_says_why_and_links_its_order_at_the_cashier(
    browser: TestClient, members: Members
) -> None:
    subscription = members.member(coins=PRICE)  # enough for the first period only
    failing = members.failing(subscription)
    order_id = failing["latest_order_id"]
    logged_in(browser, members.buyer)

    zh = me_page(browser)
    shown = card(zh, subscription["id"])
    text = words(shown)
    for chinese in (
        "续费失败",
        "续费失败。 知识币余额不足。",
        f"我们将于 {when(failing['next_attempt_at'], 'zh_CN')} 再次尝试扣款",
        "立即支付续费",
        "取消订阅",
    ):
        assert chinese in text, chinese
    assert f'href="/pay/{order_id}"' in shown
    assert helpers.untranslated(zh) == []
    en = words(card(me_page(browser, "en"), subscription["id"]))
    for english in (
        "Renewal failed",
        "The renewal failed. Your knowledge-coin balance was too low.",
        "Pay the renewal now",
        "Cancel the subscription",
    ):
        assert english in en, english
    # The link opens the renewal's order at the cashier, for the buyer to pay any way.
    cashier = browser.get(f"/pay/{order_id}")
    assert cashier.status_code == 200
    assert TITLE in cashier.text

    # Paid through a gateway: nothing is left to pay, and the page says so rather than
    # "failed" (the subscription stays past due until the worker's next run sees it paid).
    members.confirm(members.pay({"id": order_id}))
    assert members.subscription(subscription["id"])["status"] == "past_due"
    paid = card(me_page(browser), subscription["id"])
    assert f'href="/pay/{order_id}"' not in paid
    text = words(paid)
    assert "续费已支付" in text
    assert "我们已收到续费款项，你的会员权益已延长。订阅稍后即恢复为生效中。" in text
    assert "续费失败" not in text
    assert renew_subscriptions(members.renewals).get("renewed") == 1
    renewed = words(card(me_page(browser, "en"), subscription["id"]))
    assert "Active" in renewed
    assert "Renewal" not in renewed


def test_canceling_a_failing_subscription_ends_it_now(
    browser: TestClient, members: Members
) -> None:
    """A failing renewal has no paid period to wait for: the buyer's cancel ends it now."""
    subscription = members.member(coins=PRICE)
    members.failing(subscription)
    logged_in(browser, members.buyer)
    token = csrf_of(me_page(browser))
    ended = post_form(browser, f"/me/subscriptions/{subscription['id']}/cancel", token)
    assert ended.status_code == 303
    assert ended.headers["location"].startswith("/me?subscription=ended")
    api = members.subscription(subscription["id"])
    assert (api["status"], api["cancel_reason"]) == ("canceled", "requested")
    page = followed(browser, ended.headers["location"])
    assert "你的订阅已终止。" in page
    shown = card(page, subscription["id"])
    text = words(shown)
    assert "已取消" in text
    assert "已应要求取消" in text
    assert "立即支付续费" not in text
    assert "/cancel" not in shown
    assert "/resume" not in shown
    assert helpers.untranslated(page) == []
    en = words(card(me_page(browser, "en"), subscription["id"]))
    assert "Canceled on request" in en


# The console -------------------------------------------------------------------------------


def test_staff_read_the_subscriptions_newest_first_by_status_and_page_by_page(
    app: FastAPI,
    build: Builders,
    members: Members,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = members.member()
    other = build.buyer(members.app)
    second = members.member(other)
    ended = members.client.post(
        f"/v1/subscriptions/{second['id']}/cancel",
        json={"at_period_end": False},
        headers=members.app.headers,
    )
    assert ended.status_code == 200, ended.text
    finance, _ = staff_browser(app, build, Role.FINANCE)

    zh = finance.get("/admin/subscriptions")
    assert zh.status_code == 200
    assert '<a href="/admin/subscriptions" class="current">订阅</a>' in zh.text
    rows = ROW.findall(zh.text)
    assert [found for found, _ in rows] == [second["id"], first["id"]]  # newest first
    cells = {found: words(row) for found, row in rows}
    for chinese in (TITLE, "每 30 天 ¥30.00", "生效中", first["latest_order_id"]):
        assert chinese in cells[first["id"]], chinese
    for chinese in ("已取消", "已应要求取消"):
        assert chinese in cells[second["id"]], chinese
    # Finance reads a buyer's email masked, as the API shows it them, and cancels nothing.
    assert mask_email(members.buyer.email) in cells[first["id"]]
    assert members.buyer.email not in zh.text
    assert "/cancel" not in zh.text
    assert "只有管理员和客服可以取消订阅。" in zh.text
    assert untranslated(zh.text) == []

    only_canceled = finance.get("/admin/subscriptions", params={"status": "canceled"}).text
    assert [found for found, _ in ROW.findall(only_canceled)] == [second["id"]]
    en = finance.get("/admin/subscriptions", params={"status": "active", "lang": "en"}).text
    [(found, row)] = ROW.findall(en)
    assert found == first["id"]
    assert "CN¥30.00 every 30 days" in words(row)
    assert "Active" in words(row)
    # A status it does not know lists them all.
    assert len(ROW.findall(finance.get("/admin/subscriptions?status=nope").text)) == 2

    monkeypatch.setattr(console_subscriptions, "LISTED", 1)
    page = finance.get("/admin/subscriptions", params={"lang": "en"}).text
    assert [found for found, _ in ROW.findall(page)] == [second["id"]]
    older = re.search(r'<a href="(/admin/subscriptions\?[^"]+)">Older subscriptions</a>', page)
    assert older is not None
    link = older.group(1).replace("&amp;", "&")
    assert [found for found, _ in ROW.findall(finance.get(link).text)] == [first["id"]]


def test_support_cancels_at_the_period_end_and_admin_cancels_now(
    app: FastAPI, build: Builders, members: Members
) -> None:
    subscription = members.member()
    support, _ = staff_browser(app, build, Role.SUPPORT)
    listed = support.get("/admin/subscriptions", params={"lang": "en"}).text
    action = f'action="/admin/subscriptions/{subscription["id"]}/cancel"'
    assert listed.count(action) == 2  # at the period's end, or now
    assert "Only admin and support staff can cancel" not in listed

    ending = post_form(
        support,
        f"/admin/subscriptions/{subscription['id']}/cancel",
        csrf_of(listed),
        at_period_end="1",
    )
    assert ending.status_code == 303, ending.text
    assert ending.headers["location"] == (
        f"/admin/subscriptions?done=subscription_ending&ref={subscription['id']}"
    )
    api = members.subscription(subscription["id"])
    assert (api["status"], api["cancel_at_period_end"]) == ("active", True)
    page = support.get(ending.headers["location"]).text
    assert "该订阅将在买家已付费的周期结束时终止，不会再续费。" in page
    assert "本期结束后终止" in page
    assert page.count(action) == 1  # only "now" is left
    assert untranslated(page) == []

    admin, _ = staff_browser(app, build, Role.ADMIN)
    listed = admin.get("/admin/subscriptions").text
    assert members.buyer.email in listed  # admins read emails in full
    now = post_form(
        admin,
        f"/admin/subscriptions/{subscription['id']}/cancel",
        csrf_of(listed),
        at_period_end="0",
    )
    assert now.status_code == 303, now.text
    assert "done=subscription_canceled" in now.headers["location"]
    api = members.subscription(subscription["id"])
    assert (api["status"], api["cancel_reason"]) == ("canceled", "requested")
    page = admin.get(now.headers["location"]).text
    assert "订阅已取消：已经终止，不会再续费。" in page
    assert action not in page

    # Sent again (another tab): refused in words with the conflict's status.
    again = post_form(
        admin, f"/admin/subscriptions/{subscription['id']}/cancel", csrf_of(page), at_period_end="0"
    )
    assert again.status_code == 409
    assert "该订阅现在无法更改" in again.text
    assert untranslated(again.text) == []
    missing = post_form(admin, "/admin/subscriptions/sub_missing/cancel", csrf_of(page))
    assert missing.status_code == 404
    assert "找不到该订阅。" in missing.text


def test_finance_buyers_apps_and_strangers_cannot_cancel_and_forms_need_csrf(
    app: FastAPI, build: Builders, members: Members
) -> None:
    subscription = members.member()
    path = f"/admin/subscriptions/{subscription['id']}/cancel"

    finance, _ = staff_browser(app, build, Role.FINANCE)
    token = csrf_of(finance.get("/admin/subscriptions").text)
    refused = post_form(finance, path, token, at_period_end="0")
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")

    buyer = web_client(app)
    web_login(buyer, members.buyer)
    assert buyer.get("/admin/subscriptions").status_code == 403
    assert post_form(buyer, path, csrf_of(buyer.get("/me").text)).status_code == 403

    stranger = web_client(app)
    answer = stranger.get("/admin/subscriptions")
    assert answer.headers["location"] == "/login?next=%2Fadmin%2Fsubscriptions"
    # An app's API key opens no page, and a form sent with it is refused.
    assert stranger.get("/admin/subscriptions", headers=members.app.headers).status_code == 303
    assert stranger.post(path, data={}, headers=members.app.headers).status_code == 403

    admin, _ = staff_browser(app, build, Role.ADMIN)
    admin.get("/admin/subscriptions")
    forged = admin.post(path, data={"at_period_end": "0"})
    assert forged.status_code == 403
    assert 'data-code="csrf_failed"' in forged.text

    api = members.subscription(subscription["id"])
    assert (api["status"], api["cancel_at_period_end"]) == ("active", False)
