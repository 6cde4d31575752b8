"""The staff console (/admin): every page for admin in Chinese and English with nothing left
untranslated, roles as the API has them, the refund approval and risk release forms, CSRF on
every form, CSV export, and an order's story after a test-channel payment."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_file
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jinja2.ext import babel_extract

from knowpay.auth.principals import Role
from knowpay.channels.types import Bill
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.masking import mask_email
from knowpay.payments import tasks
from knowpay.reconciliation import service as reconciliation
from knowpay.reconciliation import tasks as reconciliation_tasks
from knowpay.refunds import service as refunds_service
from knowpay.web.console.labels import ERRORS, NOTICES, VALUES
from knowpay.web.errors import MESSAGES
from knowpay.web.i18n import make_gettext, read_catalog
from knowpay.worker.runner import Worker
from tests.builders import Builders, Caller, Shop

TEMPLATES = Path(__file__).parents[2] / "src" / "knowpay" / "web" / "templates" / "console"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')

PAGES = {
    "/admin": ("Search orders, payments and refunds", "搜索订单、支付和退款"),
    "/admin/refunds": ("Refund approvals", "退款审批"),
    "/admin/duplicates": ("Duplicate payments", "重复支付"),
    "/admin/risk": ("Risk reviews", "风控审核"),
    "/admin/channels": ("Channel health", "渠道健康"),
    "/admin/limits": ("Spending limits", "支付限额"),
    "/admin/audit": ("Audit log", "审计日志"),
    "/admin/alerts": ("Alerts", "告警"),
    "/admin/reconciliation": ("Reconciliation", "对账"),
    "/admin/settlements": ("Creator settlements", "创作者结算"),
    "/admin/subscriptions": ("Subscriptions", "订阅"),
    "/admin/reports": ("Reports", "报表"),
    "/admin/reports/success-rate": ("Payment success rate", "支付成功率"),
    "/admin/reports/refund-rate": ("Refund rate", "退款率"),
    "/admin/reports/channel-mix": ("Channel mix", "渠道构成"),
    "/admin/reports/revenue": ("Revenue per day", "每日收入"),
    "/admin/reports/creators": ("Revenue per creator", "创作者收入"),
}


# Helpers -------------------------------------------------------------------------------------


def web_client(app: FastAPI) -> TestClient:
    """A browser of its own (its own cookie jar) against the same app."""
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def web_login(browser: TestClient, caller: Caller) -> None:
    page = browser.get("/login")
    assert page.status_code == 200, page.text
    answer = browser.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "email": caller.email,
            "password": caller.password,
            "next": "/admin",
        },
    )
    assert answer.status_code == 303, answer.text


def staff_browser(app: FastAPI, build: Builders, role: Role) -> tuple[TestClient, Caller]:
    caller = build.staff(role)
    browser = web_client(app)
    web_login(browser, caller)
    return browser, caller


class _Text(HTMLParser):
    """Visible text nodes and the attributes a person reads (placeholder, aria-label, title)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("placeholder", "aria-label", "title") and value:
                self.nodes.append(value.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.nodes.append(" ".join(data.split()))


DATA = frozenset({"Course"})
"""Stored data that happens to be a catalog message too (the builders' product title)."""


def untranslated(html: str) -> list[str]:
    """English catalog messages that a zh_CN page still shows."""
    english = {
        m.id
        for m in read_catalog("zh_CN")
        if isinstance(m.id, str) and m.id and m.string and m.string != m.id
    } - DATA
    parser = _Text()
    parser.feed(html)
    found = []
    for node in parser.nodes:
        for message in english:
            if node == message or (" " in message and message in node):
                found.append(message)
    return sorted(set(found))


def console_msgids() -> set[str]:
    """Every message the console's templates and labels use."""
    ids: set[str] = set()
    for path in TEMPLATES.rglob("*.html"):
        for _line, message, _comments, _context in extract_from_file(
            babel_extract, str(path), options={"trim_blocks": "true", "lstrip_blocks": "true"}
        ):
            ids.add(message if isinstance(message, str) else message[0])
    return ids | set(VALUES.values()) | set(NOTICES.values()) | set(ERRORS.values())


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def paid_order(shop: Shop, **fields: Any) -> dict[str, Any]:
    order = shop.order(**fields)
    shop.confirm(shop.pay(order))
    return order


def pending_refund(shop: Shop, clock: FrozenClock) -> dict[str, Any]:
    """A refund outside the automatic window: it waits for finance."""
    order = paid_order(shop)
    clock.advance(timedelta(days=8))
    answer = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "not_as_described", "reason_text": "跑调"},
        headers=shop.build.relogin(shop.buyer).headers,
    )
    assert answer.status_code == 201, answer.text
    refund: dict[str, Any] = answer.json()
    assert refund["status"] == "pending_approval"
    return refund


def held_payment(shop: Shop, client: TestClient, finance: Caller) -> dict[str, Any]:
    """An attempt held for review by an amount-anomaly rule (as in the payment risk tests)."""
    rule = {
        "kind": "amount_anomaly",
        "action": "review",
        "params": {"multiplier": 3, "min_history": 2},
    }
    answer = client.post("/v1/admin/risk/rules", json=rule, headers=finance.headers)
    assert answer.status_code == 201, answer.text
    for _ in range(2):
        shop.confirm(shop.pay(shop.order()))
    big = shop.build.product(shop.app, prices=[{"amount": 99000, "currency": "CNY"}])
    held = client.post(
        f"/v1/orders/{shop.order(big)['id']}/payments",
        json={"channel": "test"},
        headers=shop.app.headers,
    )
    assert held.status_code == 201, held.text
    payment: dict[str, Any] = held.json()
    assert payment["held_for_review"] is True
    return payment


# Tests ---------------------------------------------------------------------------------------


def test_every_console_message_has_a_chinese_translation() -> None:
    catalog = read_catalog("zh_CN")
    missing = [m for m in sorted(console_msgids()) if not (catalog.get(m) and catalog[m].string)]
    assert missing == []


@pytest.mark.parametrize(("lang", "index"), [("en", 0), ("zh_CN", 1)])
def test_every_page_renders_for_admin_in_both_languages(
    app: FastAPI, build: Builders, shop: Shop, clock: FrozenClock, lang: str, index: int
) -> None:
    refund = pending_refund(shop, clock)
    browser, _ = staff_browser(app, build, Role.ADMIN)
    pages = {**PAGES, f"/admin/orders/{refund['order_id']}": ("Ledger entries", "账务分录")}
    for path, texts in pages.items():
        page = browser.get(path, params={"lang": lang})
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-language"] == lang.replace("_", "-")
        assert texts[index] in page.text, path
        if lang == "zh_CN":
            assert untranslated(page.text) == [], path
    queue = browser.get("/admin/refunds", params={"lang": lang}).text
    assert refund["id"] in queue
    assert ("Approve", "批准")[index] in queue


def test_support_reads_the_queue_but_cannot_approve(
    app: FastAPI, build: Builders, shop: Shop, clock: FrozenClock
) -> None:
    refund = pending_refund(shop, clock)
    browser, _ = staff_browser(app, build, Role.SUPPORT)
    queue = browser.get("/admin/refunds", params={"lang": "en"})
    assert queue.status_code == 200
    assert refund["id"] in queue.text
    assert f"/admin/refunds/{refund['id']}/approve" not in queue.text
    assert "Only finance and admin staff can approve" in queue.text
    tried = browser.post(
        f"/admin/refunds/{refund['id']}/approve", data={"csrf_token": csrf_of(queue.text)}
    )
    assert tried.status_code == 403
    assert tried.headers["content-type"].startswith("text/html")
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "pending_approval"
    # Revenue reports follow the API: finance and admin only.
    assert browser.get("/admin/reports/revenue").status_code == 403
    assert browser.get("/admin/reports/success-rate").status_code == 200


def test_support_and_finance_see_buyers_emails_masked_and_admins_in_full(
    app: FastAPI, build: Builders, shop: Shop, clock: FrozenClock
) -> None:
    """Found by a web audit: the console showed support and finance every buyer's email in
    full, where the API (and docs/security.md) masks it for them."""
    refund = pending_refund(shop, clock)
    email, masked = shop.buyer.email, mask_email(shop.buyer.email)
    assert masked != email
    pages = ("/admin/refunds", f"/admin/orders/{refund['order_id']}", "/admin")
    for role in (Role.SUPPORT, Role.FINANCE):
        browser, _ = staff_browser(app, build, role)
        for path in pages:
            text = browser.get(path, params={"q": email} if path == "/admin" else {}).text
            typed = 1 if path == "/admin" else 0  # the search box shows what staff typed
            assert text.count(email) == typed, (role, path)
            assert masked in text, (role, path)
    admin, _ = staff_browser(app, build, Role.ADMIN)
    for path in pages:
        assert email in admin.get(path, params={"q": email} if path == "/admin" else {}).text


def test_buyers_apps_and_strangers_are_refused(app: FastAPI, shop: Shop) -> None:
    stranger = web_client(app)
    answer = stranger.get("/admin/refunds")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")
    as_app = stranger.get("/admin", headers=shop.app.headers)  # an API key opens no page
    assert as_app.status_code == 303
    buyer = web_client(app)
    web_login(buyer, shop.buyer)
    for path in ("/admin", "/admin/refunds", "/admin/reports/channel-mix"):
        refused = buyer.get(path)
        assert refused.status_code == 403, path
        assert "Ledger" not in refused.text


def test_finance_approves_a_pending_refund_in_the_console(
    app: FastAPI, build: Builders, shop: Shop, clock: FrozenClock
) -> None:
    refund = pending_refund(shop, clock)
    browser, finance = staff_browser(app, build, Role.FINANCE)
    queue = browser.get("/admin/refunds")
    assert refund["id"] in queue.text
    approved = browser.post(
        f"/admin/refunds/{refund['id']}/approve",
        data={"csrf_token": csrf_of(queue.text), "note": "录音确有问题"},
    )
    assert approved.status_code == 303, approved.text
    assert approved.headers["location"].startswith("/admin/refunds?done=refund_approved")
    after = browser.get(approved.headers["location"] + "&lang=en")
    assert "The refund was approved." in after.text
    assert f'id="refund-{refund["id"]}"' not in after.text  # the queue moved on
    moved = shop.get(f"/v1/refunds/{refund['id']}")
    assert moved["status"] == "succeeded"
    step = next(s for s in moved["timeline"] if s["step"] == "approved")
    assert (step["actor"], step["note"]) == (f"finance:{finance.id}", "录音确有问题")
    audit = shop.client.get(
        "/v1/admin/audit",
        params={"action": "refund.approved", "object_id": refund["id"]},
        headers=build.relogin(finance).headers,
    ).json()["data"]
    assert [record["actor"] for record in audit] == [f"staff:{finance.id}"]


def test_rejecting_needs_a_reason_and_a_decided_refund_shows_an_error(
    app: FastAPI, build: Builders, shop: Shop, clock: FrozenClock
) -> None:
    refund = pending_refund(shop, clock)
    browser, _ = staff_browser(app, build, Role.ADMIN)
    token = csrf_of(browser.get("/admin/refunds").text)
    empty = browser.post(
        f"/admin/refunds/{refund['id']}/reject", data={"csrf_token": token, "reason": " "}
    )
    assert empty.status_code == 422
    assert "请填写买家将看到的原因。" in empty.text  # staff accounts default to zh_CN
    rejected = browser.post(
        f"/admin/refunds/{refund['id']}/reject", data={"csrf_token": token, "reason": "已使用"}
    )
    assert rejected.status_code == 303
    assert shop.get(f"/v1/refunds/{refund['id']}")["status"] == "rejected"
    again = browser.post(f"/admin/refunds/{refund['id']}/approve", data={"csrf_token": token})
    assert again.status_code == 409
    assert make_gettext("zh_CN")(MESSAGES["refund_not_pending"]) in again.text


def test_the_risk_release_form_releases_a_held_payment(
    app: FastAPI, build: Builders, shop: Shop, client: TestClient
) -> None:
    finance = build.staff(Role.FINANCE)
    payment = held_payment(shop, client, finance)
    browser, support = staff_browser(app, build, Role.SUPPORT)  # support may decide reviews
    queue = browser.get("/admin/risk", params={"lang": "en"})
    assert payment["id"] in queue.text
    decision_id = re.search(r'action="/admin/risk/([^/"]+)/release"', queue.text)
    assert decision_id
    released = browser.post(
        f"/admin/risk/{decision_id.group(1)}/release", data={"csrf_token": csrf_of(queue.text)}
    )
    assert released.status_code == 303, released.text
    after = shop.get(f"/v1/payments/{payment['id']}")
    assert (after["held_for_review"], after["action"]) == (False, {"type": "none"})
    review = client.get(
        f"/v1/admin/risk/reviews/{decision_id.group(1)}", headers=build.relogin(finance).headers
    ).json()
    assert (review["review_status"], review["reviewed_by"]) == ("released", support.id)
    twice = browser.post(
        f"/admin/risk/{decision_id.group(1)}/release", data={"csrf_token": csrf_of(queue.text)}
    )
    assert twice.status_code == 409
    assert "这条审核已经处理过了。" in twice.text


def test_every_console_form_refuses_a_post_without_csrf_token(
    app: FastAPI, build: Builders
) -> None:
    browser, _ = staff_browser(app, build, Role.ADMIN)
    page = browser.get("/admin/limits").text
    forms = set(re.findall(r'<form[^>]*method="post"[^>]*action="(/admin[^"]*)"', page))
    assert "/admin/limits" in forms
    for path in (
        "/admin/refunds/rf_x/approve",
        "/admin/refunds/rf_x/reject",
        "/admin/risk/rd_x/release",
        "/admin/risk/rd_x/reject",
        "/admin/limits",
        "/admin/limits/lim_x",
        "/admin/reconciliation/discrepancies/rcd_x/resolve",
        *forms,
    ):
        answer = browser.post(path, data={"note": "x", "reason": "x", "amount": "1"})
        assert answer.status_code == 403, path
        assert 'data-code="csrf_failed"' in answer.text, path


def test_limits_are_added_and_changed_in_the_console(
    app: FastAPI, build: Builders, client: TestClient
) -> None:
    browser, finance = staff_browser(app, build, Role.FINANCE)
    token = csrf_of(browser.get("/admin/limits").text)
    bad = browser.post(
        "/admin/limits",
        data={"csrf_token": token, "scope": "buyer", "period": "day", "amount": "abc"},
    )
    assert bad.status_code == 422
    added = browser.post(
        "/admin/limits",
        data={
            "csrf_token": token,
            "scope": "buyer",
            "period": "day",
            "amount": "500.00",
            "currency": "CNY",
            "buyer_level": "unverified",
        },
    )
    assert added.status_code == 303, added.text
    [limit] = client.get("/v1/admin/limits", headers=finance.headers).json()["data"]
    assert (limit["amount"], limit["buyer_level"], limit["enabled"]) == (50000, "unverified", True)
    changed = browser.post(
        f"/admin/limits/{limit['id']}", data={"csrf_token": token, "amount": "800"}
    )
    assert changed.status_code == 303
    [limit] = client.get("/v1/admin/limits", headers=finance.headers).json()["data"]
    assert (limit["amount"], limit["enabled"]) == (80000, False)  # the box was not ticked
    described = {"csrf_token": token, "description": "新客日限", "enabled": "on"}
    assert browser.post(f"/admin/limits/{limit['id']}", data=described).status_code == 303
    page = browser.get("/admin/limits").text
    assert 'value="新客日限"' in page  # the edit form shows it, to change or clear
    cleared = {"csrf_token": token, "description": "", "enabled": "on"}
    assert browser.post(f"/admin/limits/{limit['id']}", data=cleared).status_code == 303
    [limit] = client.get("/v1/admin/limits", headers=finance.headers).json()["data"]
    assert (limit["description"], limit["amount"], limit["enabled"]) == (None, 80000, True)
    support, _ = staff_browser(app, build, Role.SUPPORT)
    page = support.get("/admin/limits")
    assert f'action="/admin/limits/{limit["id"]}"' not in page.text
    refused = support.post("/admin/limits", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403


def test_channel_mix_exports_csv_for_excel(app: FastAPI, build: Builders, shop: Shop) -> None:
    paid_order(shop)
    browser, _ = staff_browser(app, build, Role.ADMIN)
    page = browser.get("/admin/reports/channel-mix", params={"lang": "en"})
    assert "<svg" in page.text
    assert "test (CNY)" in page.text
    answer = browser.get("/admin/reports/channel-mix", params={"format": "csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="knowpay-channel-mix-')
    assert disposition.endswith('.csv"')
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows == [
        ["channel", "currency", "payments", "amount", "share_percent"],
        ["test", "CNY", "1", "99.00", "100.0"],
    ]


def test_every_report_takes_its_period_and_csv_from_the_query(
    app: FastAPI, build: Builders
) -> None:
    browser, _ = staff_browser(app, build, Role.ADMIN)
    for name in ("success-rate", "refund-rate", "channel-mix", "revenue", "creators"):
        answer = browser.get(
            f"/admin/reports/{name}",
            params={"start": "2026-01-01", "end": "2026-01-31", "format": "csv"},
        )
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="knowpay-{name}-2026-01-01-2026-01-31.csv"'
        )
        page = browser.get(f"/admin/reports/{name}", params={"start": "2026-01-01"})
        assert page.headers["content-type"].startswith("text/html"), name


def test_the_order_story_shows_the_notification_and_the_ledger(
    app: FastAPI, build: Builders, shop: Shop, database: Database
) -> None:
    order = shop.order()
    payment = shop.pay(order)
    shop.confirm(payment)
    browser, _ = staff_browser(app, build, Role.SUPPORT)
    story = browser.get(f"/admin/orders/{order['id']}", params={"lang": "en"})
    assert story.status_code == 200
    text = story.text
    assert payment["id"] in text
    assert "Notifications received" in text
    assert "<details><summary>Show</summary><pre>" in text
    assert "processed" in text
    assert "Ledger entries" in text
    assert "platform" in text  # a posting to a platform account
    assert "¥99.00" in text
    assert "payment.succeeded" in text or "order.paid" in text  # an outbox event
    assert "Audit records" in text
    found = browser.get("/admin", params={"q": shop.buyer.email, "lang": "en"})
    assert order["id"] in found.text
    by_out_trade_no = browser.get("/admin", params={"q": order["out_trade_no"]})
    assert order["id"] in by_out_trade_no.text
    assert browser.get("/admin/orders/ord_missing").status_code == 404


@pytest.mark.parametrize("amount", ["5e999999", "1e999999", "9" * 30, "NaN", "sNaN", "-Infinity"])
def test_a_limit_amount_too_large_to_hold_gets_the_invalid_amount_page(
    app: FastAPI, build: Builders, client: TestClient, amount: str
) -> None:
    browser, finance = staff_browser(app, build, Role.FINANCE)
    token = csrf_of(browser.get("/admin/limits").text)
    form = {"csrf_token": token, "scope": "buyer", "period": "day", "currency": "CNY"}
    added = browser.post("/admin/limits", data={**form, "amount": amount})
    assert added.status_code == 422, added.text[:300]
    assert make_gettext("zh_CN")(ERRORS["invalid_amount"]) in added.text
    assert client.get("/v1/admin/limits", headers=finance.headers).json()["data"] == []
    assert browser.post("/admin/limits", data={**form, "amount": "500"}).status_code == 303
    [limit] = client.get("/v1/admin/limits", headers=finance.headers).json()["data"]
    changed = browser.post(
        f"/admin/limits/{limit['id']}", data={"csrf_token": token, "amount": amount}
    )
    assert changed.status_code == 422, changed.text[:300]
    assert make_gettext("zh_CN")(ERRORS["invalid_amount"]) in changed.text
    [after] = client.get("/v1/admin/limits", headers=finance.headers).json()["data"]
    assert after == limit


def test_a_payment_rejected_in_review_is_explained_on_the_cashier_in_the_buyers_words(
    app: FastAPI, build: Builders, shop: Shop, client: TestClient
) -> None:
    """Found by a web audit: the cashier said, in English on the Chinese page, that the
    payment provider gave "Rejected in risk review." as the reason."""
    finance = build.staff(Role.FINANCE)
    payment = held_payment(shop, client, finance)
    browser, _ = staff_browser(app, build, Role.SUPPORT)
    queue = browser.get("/admin/risk")
    decision_id = re.search(r'action="/admin/risk/([^/"]+)/reject"', queue.text)
    assert decision_id
    rejected = browser.post(
        f"/admin/risk/{decision_id.group(1)}/reject", data={"csrf_token": csrf_of(queue.text)}
    )
    assert rejected.status_code == 303, rejected.text
    buyer = web_client(app)
    web_login(buyer, shop.buyer)
    cashier = buyer.get(f"/pay/{payment['order_id']}").text
    assert "我们的团队审核了这笔支付，未予通过。" in cashier
    assert "Rejected in risk review" not in cashier
    assert make_gettext("zh_CN")("Reason given by the payment provider") not in cashier
    english = buyer.get(f"/pay/{payment['order_id']}", params={"lang": "en"}).text
    assert "Our team checked this payment and did not let it through." in english
    assert "payment provider" not in english


def test_releasing_a_held_payment_whose_order_expired_says_it_went_nowhere(
    app: FastAPI,
    build: Builders,
    shop: Shop,
    client: TestClient,
    clock: FrozenClock,
    settings: Settings,
    database: Database,
) -> None:
    """Found by a web audit: the worker had closed the order and its held payment, and the
    release form still said "The payment was released to its gateway"."""
    finance = build.staff(Role.FINANCE)
    payment = held_payment(shop, client, finance)
    clock.advance(timedelta(hours=3))
    worker = Worker(settings, database, clock, app.state.channel_registry)
    # Only the expiry: the page as staff see it before `close_moot_reviews` takes the review
    # out of the queue (tests/payments/test_payment_risk.py).
    assert tasks.expire_orders(worker.jobs) >= 1
    browser, _ = staff_browser(app, build, Role.SUPPORT)
    queue = browser.get("/admin/risk", params={"lang": "en"})
    decision_id = re.search(r'action="/admin/risk/([^/"]+)/reject"', queue.text)
    assert decision_id
    # The queue says so and offers no Release; a page opened before the order expired does.
    assert "The payment closed before a decision: there is nothing to release." in queue.text
    assert f"/admin/risk/{decision_id.group(1)}/release" not in queue.text
    assert untranslated(browser.get("/admin/risk").text) == []
    released = browser.post(
        f"/admin/risk/{decision_id.group(1)}/release", data={"csrf_token": csrf_of(queue.text)}
    )
    assert released.status_code == 303, released.text
    assert "done=review_released_payment_closed" in released.headers["location"]
    after = browser.get(released.headers["location"] + "&lang=en").text
    assert "the payment did not go through to its gateway" in after
    assert "The payment was released to its gateway." not in after
    assert shop.get(f"/v1/payments/{payment['id']}")["status"] == "closed"


def test_the_order_story_shows_stored_kinds_and_steps_in_the_pages_language(
    app: FastAPI, build: Builders, shop: Shop
) -> None:
    """Found by a web audit: product kind, refund timeline steps and ledger entry kinds were
    shown as stored (`course`, `sent_to_gateway`, `payment_captured`) on Chinese pages."""
    order = paid_order(shop)
    refund = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "reason": "other"},
        headers=shop.buyer.headers,
    )
    assert refund.status_code == 201, refund.text
    steps = [entry["step"] for entry in refund.json()["timeline"]]
    assert {"requested", "approved", "sent_to_gateway"} <= set(steps)
    browser, _ = staff_browser(app, build, Role.ADMIN)
    story = browser.get(f"/admin/orders/{order['id']}").text
    parser = _Text()
    parser.feed(story)
    shown = set(parser.nodes) | {part.strip() for node in parser.nodes for part in node.split("·")}
    for stored in ("course", *steps, "payment_captured", "refund_sent"):
        assert stored not in shown, stored
    for chinese in ("课程", "已申请", "已批准", "已发往网关", "支付入账", "退款已发出"):
        assert chinese in story, chinese
    assert untranslated(story) == []


def test_a_duplicate_payments_refund_reason_is_shown_in_the_pages_language(
    app: FastAPI, build: Builders, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    """Found by a browser audit: the system's reason for sending a second payment back is
    stored in English (it is the gateway's refund note) and the Chinese console showed it so."""
    order = shop.order()
    first, second = shop.pay(order), shop.pay(order)
    shop.confirm(first)
    shop.confirm(second)
    with database.session_scope() as session:
        refund = refunds_service.start_duplicate_refund(session, second["id"], clock.now())
        assert refund is not None
        assert refund.reason_text == refunds_service.DUPLICATE_OF_PAID  # the gateway's note
    browser, _ = staff_browser(app, build, Role.ADMIN)
    story = browser.get(f"/admin/orders/{order['id']}").text
    assert "该订单已支付；这笔重复付款将自动退回。" in story
    assert refunds_service.DUPLICATE_OF_PAID not in story
    english = browser.get(f"/admin/orders/{order['id']}", params={"lang": "en"}).text
    assert refunds_service.DUPLICATE_OF_PAID in english


def test_finance_resolves_a_reconciliation_discrepancy_in_the_console(
    app: FastAPI, build: Builders, shop: Shop, database: Database, clock: FrozenClock
) -> None:
    """A capture the gateway's bill does not show, on the Chinese page, resolved by a form."""
    order = paid_order(shop)
    [payment] = shop.get(f"/v1/orders/{order['id']}/payments")["data"]
    source = reconciliation_tasks.bill_sources(app.state.channel_registry)["test"]
    day = clock.now().date()
    with database.session_scope() as session:
        run_id = reconciliation.start_run(session, "test", day, "finance:x", clock.now()).id
        reconciliation.finish_run(session, run_id, source, Bill(day, []), clock.now())
        [found] = reconciliation.discrepancies_of(session, run_id)
    browser, _ = staff_browser(app, build, Role.FINANCE)
    page = browser.get("/admin/reconciliation")
    assert page.status_code == 200
    for chinese in ("未处理的差异", "账单中没有", "有差异", payment["id"]):
        assert chinese in page.text, chinese
    assert untranslated(page.text) == []
    path = f"/admin/reconciliation/discrepancies/{found.id}/resolve"
    token = csrf_of(page.text)
    empty = browser.post(path, data={"csrf_token": token, "note": "  "})
    assert empty.status_code == 422
    assert "请填写差异的原因" in empty.text
    done = browser.post(path, data={"csrf_token": token, "note": "次日账单已包含"})
    assert done.status_code == 303, done.text
    after = browser.get(done.headers["location"])
    assert "差异已处理" in after.text
    assert f'id="discrepancy-{found.id}"' not in after.text
    again = browser.post(path, data={"csrf_token": token, "note": "again"})
    assert again.status_code == 409
    support, _ = staff_browser(app, build, Role.SUPPORT)
    assert support.get("/admin/reconciliation").status_code == 403
    assert "/admin/reconciliation" not in support.get("/admin").text  # no link to a 403
