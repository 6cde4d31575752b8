"""Creators' settlements on the pages: finance settles a month and records a payout in the
console (/admin/settlements), a month that has not ended is refused in plain words, only
finance and admin act (support reads), and a creator sees their earnings and statements in
the buyer center (/me) in both languages, where an ordinary buyer sees none."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.kit.masking import mask_email
from tests import books
from tests.builders import Builders, CreatorShop
from tests.web import helpers
from tests.web.test_console import csrf_of, staff_browser, untranslated, web_client, web_login

SHARE = 6930  # the creator's 70 % of ¥99.00
ROW = re.compile(r'<tr id="settlement-(stl_[A-Za-z0-9]+)">(.*?)</tr>', re.S)


class Studio(CreatorShop):
    def __init__(self, build: Builders) -> None:
        # A title that is no catalog message, so the untranslated checks read only ours.
        super().__init__(build, course_title="数据分析 30 讲")

    def statements(self, **params: str) -> list[dict[str, Any]]:
        answer = self.client.get("/v1/settlements", params=params, headers=self.finance.headers)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["data"]
        return found

    def statement(self, settlement_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/v1/settlements/{settlement_id}", headers=self.finance.headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def settle(self, month: str) -> list[dict[str, Any]]:
        answer = self.client.post(
            "/v1/admin/settlements/run", json={"month": month}, headers=self.finance.headers
        )
        assert answer.status_code == 200, answer.text
        made: list[dict[str, Any]] = answer.json()
        return made

    def pay_out(self, settlement_id: str) -> None:
        answer = self.client.post(
            f"/v1/admin/settlements/{settlement_id}/pay",
            json={"reference": "BANK-1"},
            headers=self.finance.headers,
        )
        assert answer.status_code == 200, answer.text

    def owed(self) -> list[dict[str, Any]]:
        answer = self.client.get(
            f"/v1/creators/{self.creator.id}/balance", headers=self.finance.headers
        )
        assert answer.status_code == 200, answer.text
        owed: list[dict[str, Any]] = answer.json()["owed"]
        return owed


@pytest.fixture
def studio(build: Builders) -> Studio:
    return Studio(build)


def january_settled_by_api(studio: Studio, clock: FrozenClock) -> tuple[dict[str, Any], str]:
    """A sale on 1 January, the month over (31 days on), settled: its open statement."""
    order = studio.paid_order()
    studio.advance(clock, 31)
    [made] = studio.settle("2026-01")
    assert (made["status"], made["amount"]) == ("open", SHARE)
    return order, made["id"]


def words(page: str) -> str:
    return " ".join(helpers.visible_text(page).split())


# The console -------------------------------------------------------------------------------


def test_finance_settles_a_month_and_marks_its_statement_paid_in_the_console(
    app: FastAPI, build: Builders, studio: Studio, clock: FrozenClock, database: Database
) -> None:
    order = studio.paid_order()
    studio.advance(clock, 31)  # 1 February: January has ended
    browser, finance = staff_browser(app, build, Role.FINANCE)

    page = browser.get("/admin/settlements", params={"lang": "en"})
    assert page.status_code == 200
    assert "Creator settlements" in page.text
    assert 'name="month" value="2026-01"' in page.text  # last month, ready to settle
    settled = browser.post(
        "/admin/settlements/run", data={"csrf_token": csrf_of(page.text), "month": "2026-01"}
    )
    assert settled.status_code == 303, settled.text
    assert settled.headers["location"].startswith("/admin/settlements?done=settlements_made")

    listed = browser.get(settled.headers["location"] + "&lang=en").text
    assert "The month was settled" in listed
    [(settlement_id, row)] = ROW.findall(listed)
    cells = words(row)
    for shown in ("Jan 2026", "CNY", "CN¥69.30", "CN¥0.00", "To be paid"):
        assert shown in cells, shown
    # Finance reads a creator's email masked, as the API shows it them.
    assert mask_email(studio.creator.email) in cells
    assert studio.creator.email not in listed
    [api] = studio.statements()
    assert (api["id"], api["earned"], api["amount"], api["status"]) == (
        settlement_id,
        SHARE,
        SHARE,
        "open",
    )

    detail = browser.get(f"/admin/settlements/{settlement_id}", params={"lang": "en"}).text
    assert "Share of the sale" in detail
    assert f'href="/admin/orders/{order["id"]}"' in detail
    assert f'action="/admin/settlements/{settlement_id}/pay"' in detail
    paid = browser.post(
        f"/admin/settlements/{settlement_id}/pay",
        data={"csrf_token": csrf_of(detail), "reference": "ICBC-20260201-0001"},
    )
    assert paid.status_code == 303, paid.text
    assert paid.headers["location"] == f"/admin/settlements/{settlement_id}?done=settlement_paid"
    after = browser.get(paid.headers["location"] + "&lang=en").text
    assert "The payout was recorded: the statement is paid." in after
    assert "ICBC-20260201-0001" in after
    assert f"finance:{finance.id}" in after
    assert f'action="/admin/settlements/{settlement_id}/pay"' not in after  # paid once

    statement = studio.statement(settlement_id)
    assert (statement["status"], statement["payout_reference"]) == ("paid", "ICBC-20260201-0001")
    assert studio.owed() == [{"amount": 0, "currency": "CNY"}]
    audit = studio.client.get(
        "/v1/admin/audit",
        params={"action": "settlement.paid", "object_id": settlement_id},
        headers=studio.finance.headers,
    ).json()["data"]
    assert [record["actor"] for record in audit] == [f"staff:{finance.id}"]
    assert books.violations(database) == []

    # Twice: refused in the page's words (staff accounts default to Chinese), nothing moves.
    again = browser.post(
        f"/admin/settlements/{settlement_id}/pay", data={"csrf_token": csrf_of(after)}
    )
    assert again.status_code == 409
    assert "只有待付款的结算单才能标记为已付款" in again.text
    assert untranslated(again.text) == []
    # Settling the month again makes nothing new, and says so.
    rerun = browser.post(
        "/admin/settlements/run", data={"csrf_token": csrf_of(after), "month": "2026-01"}
    )
    assert rerun.status_code == 303
    assert "done=settlements_none_made" in rerun.headers["location"]
    assert [s["id"] for s in studio.statements()] == [settlement_id]
    assert books.violations(database) == []


def test_the_settlement_pages_are_all_chinese_for_chinese_staff(
    app: FastAPI, build: Builders, studio: Studio, clock: FrozenClock
) -> None:
    order, settlement_id = january_settled_by_api(studio, clock)
    refund = studio.client.post(  # a refund in February takes part of the share back
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 3300, "reason": "other"},
        headers=studio.app.headers,
    ).json()
    if refund["status"] == "pending_approval":
        approved = studio.client.post(
            f"/v1/refunds/{refund['id']}/approve", json={}, headers=studio.finance.headers
        )
        refund = approved.json()
    assert refund["status"] == "succeeded", refund
    studio.pay_out(settlement_id)
    studio.advance(clock, 29)  # 2 March: February has ended
    [february] = studio.settle("2026-02")
    assert (february["reversed"], february["amount"]) == (2310, -2310)
    browser, _ = staff_browser(app, build, Role.ADMIN)

    listed = browser.get("/admin/settlements")
    assert listed.status_code == 200
    for chinese in ("创作者结算", "结算月份", "2026年1月", "2026年2月", "已付款", "无应付款"):
        assert chinese in listed.text, chinese
    assert untranslated(listed.text) == []
    only_paid = browser.get("/admin/settlements", params={"status": "paid"}).text
    assert [found for found, _ in ROW.findall(only_paid)] == [settlement_id]
    detail = browser.get(f"/admin/settlements/{february['id']}").text
    lines = words(detail)
    for chinese in ("被退款冲回", "付款", "-¥23.10", "-¥69.30", "月末没有应付款项"):
        assert chinese in lines, chinese
    assert f'action="/admin/settlements/{february["id"]}/pay"' not in detail
    assert untranslated(detail) == []
    # The order's story names the creator's entries in Chinese too.
    story = browser.get(f"/admin/orders/{order['id']}").text
    for chinese in ("创作者分成", "创作者分成冲回"):
        assert chinese in story, chinese
    assert "creator_share" not in words(story)
    assert untranslated(story) == []
    missing = browser.get("/admin/settlements/stl_missing")
    assert missing.status_code == 404
    assert "找不到该结算单。" in missing.text


def test_a_month_that_has_not_ended_is_not_settled_and_the_page_says_why(
    app: FastAPI, build: Builders, studio: Studio, clock: FrozenClock
) -> None:
    studio.paid_order()
    browser, _ = staff_browser(app, build, Role.FINANCE)
    token = csrf_of(browser.get("/admin/settlements").text)
    early = browser.post("/admin/settlements/run", data={"csrf_token": token, "month": "2026-01"})
    assert early.status_code == 422
    assert "2026年1月 尚未结束。月份结束后才能结算：" in words(early.text)
    assert "2026年2月1日 00:00:00 起可以结算" in words(early.text)  # Beijing time
    assert 'value="2026-01"' in early.text  # the form keeps what was typed
    assert untranslated(early.text) == []
    english = browser.post(
        "/admin/settlements/run?lang=en", data={"csrf_token": token, "month": "2026-01"}
    )
    assert english.status_code == 422
    assert (
        "Jan 2026 has not ended yet. A month can be settled only once it is over: from "
        "Feb 1, 2026, 12:00:00 AM." in words(english.text)
    )
    for typed in ("2026-13", "January", ""):
        bad = browser.post(
            "/admin/settlements/run?lang=en", data={"csrf_token": token, "month": typed}
        )
        assert bad.status_code == 422, typed
        assert "Enter the month as year and month, such as 2026-01." in bad.text
    assert studio.statements() == []


def test_only_finance_and_admin_settle_and_pay_support_reads(
    app: FastAPI, build: Builders, studio: Studio, clock: FrozenClock, database: Database
) -> None:
    _order, settlement_id = january_settled_by_api(studio, clock)
    pay_path = f"/admin/settlements/{settlement_id}/pay"

    support, _ = staff_browser(app, build, Role.SUPPORT)
    listed = support.get("/admin/settlements", params={"lang": "en"})
    assert listed.status_code == 200
    assert settlement_id in listed.text
    assert 'action="/admin/settlements/run"' not in listed.text
    assert "Only finance and admin staff can settle months and record payouts." in listed.text
    detail = support.get(f"/admin/settlements/{settlement_id}")
    assert detail.status_code == 200
    assert f'action="{pay_path}"' not in detail.text
    token = csrf_of(detail.text)
    for path, form in (
        (pay_path, {"reference": "x"}),
        ("/admin/settlements/run", {"month": "2026-01"}),
    ):
        refused = support.post(path, data={"csrf_token": token, **form})
        assert refused.status_code == 403, path
        assert refused.headers["content-type"].startswith("text/html")

    for person in (studio.buyer, studio.creator):
        browser = web_client(app)
        web_login(browser, person)
        assert browser.get("/admin/settlements").status_code == 403
        assert browser.get(f"/admin/settlements/{settlement_id}").status_code == 403
        me = browser.get("/me")
        assert me.status_code == 200
        refused = browser.post(pay_path, data={"csrf_token": csrf_of(me.text)})
        assert refused.status_code == 403

    stranger = web_client(app)
    assert stranger.get("/admin/settlements").headers["location"].startswith("/login?next=")
    # An app's API key opens no page, and a form sent with it is refused.
    assert stranger.get("/admin/settlements", headers=studio.app.headers).status_code == 303
    with_key = stranger.post(pay_path, data={"reference": "x"}, headers=studio.app.headers)
    assert with_key.status_code == 403
    # A form without its CSRF token, even finance's.
    finance, _ = staff_browser(app, build, Role.FINANCE)
    finance.get("/admin/settlements")
    for path in (pay_path, "/admin/settlements/run"):
        answer = finance.post(path, data={"month": "2026-01", "reference": "x"})
        assert answer.status_code == 403, path
        assert 'data-code="csrf_failed"' in answer.text

    assert studio.statement(settlement_id)["status"] == "open"
    assert studio.owed() == [{"amount": SHARE, "currency": "CNY"}]
    assert books.violations(database) == []


# The buyer center --------------------------------------------------------------------------


def me_page(browser: TestClient, **params: str) -> str:
    page = browser.get("/me", params=params)
    assert page.status_code == 200, page.text[:300]
    return str(page.text)


def earnings_of(page: str) -> str:
    found = re.search(r'<section class="card" id="earnings".*?</section>', page, re.S)
    assert found is not None, "no earnings section"
    return words(found.group(0))


def test_a_creator_sees_their_earnings_and_statements_on_me_in_both_languages(
    app: FastAPI, studio: Studio, clock: FrozenClock
) -> None:
    _order, january = january_settled_by_api(studio, clock)
    studio.pay_out(january)
    studio.paid_order()  # a sale in February: owed now, on no statement yet
    creator = web_client(app)
    answer = helpers.login(creator, studio.creator.email, studio.creator.password)
    assert answer.headers["location"] == "/me"

    zh = me_page(creator)
    earnings = earnings_of(zh)
    for chinese in ("创作收益", "当前应付给你: ¥69.30", "月度结算单", "2026年1月", "已付款"):
        assert chinese in earnings, chinese
    row = re.search(rf'data-settlement-id="{january}".*?</tr>', zh, re.S)
    assert row is not None
    assert words(row.group(0)).count("¥69.30") == 2  # earned and due
    assert helpers.untranslated(zh) == []

    en = earnings_of(me_page(creator, lang="en"))
    for english in ("Earnings", "Owed to you now: CN¥69.30", "Jan 2026", "Paid out"):
        assert english in en, english


def test_a_creator_without_sales_sees_an_empty_earnings_section_and_a_buyer_sees_none(
    app: FastAPI, studio: Studio
) -> None:
    newcomer = studio.build.buyer(studio.app, role="creator")
    creator = web_client(app)
    web_login(creator, newcomer)
    zh = me_page(creator)
    assert "暂无收益" in earnings_of(zh)
    assert "暂无结算单" in earnings_of(zh)
    assert helpers.untranslated(zh) == []
    assert "Nothing earned yet." in earnings_of(me_page(creator, lang="en"))

    studio.paid_order()  # the buyer bought a creator's course: still not a creator
    buyer = web_client(app)
    web_login(buyer, studio.buyer)
    for lang in ("zh_CN", "en"):
        page = me_page(buyer, lang=lang)
        assert 'id="earnings"' not in page
        assert "创作收益" not in page
        assert "Earnings" not in page
