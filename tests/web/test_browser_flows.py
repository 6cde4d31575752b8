"""End to end in a real browser: Playwright for Python driving Debian's Chromium against
`knowpay demo` (SQLite, every gateway on its simulator under /sandbox), in English and in
Chinese. A buyer logs in, buys a course with sandbox Alipay (redirect, the simulator's
cashier, back to the cashier: success, then opens it in "my content"), buys another
product with WeChat Native (QR code; the simulator's "scan" page pays in a second tab; the
cashier flips to success by itself), asks for a refund of the course, finance approves it
in the staff console, and the buyer sees the money back in the timeline. A screenshot is
saved at each step under test-artifacts/browser/<language>/."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from knowpay.cli.demo import DEMO_PEOPLE
from tests.serving import free_port
from tests.web.helpers import untranslated

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (scripts/test installs it with apt-get)",
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

TEXTS = {
    "en": {
        "switch": "English",
        "me": ["My content", "My orders"],
        "cashier": ["Checkout", "Choose how to pay", "Pay safely", "CN¥99.00"],
        "success": "Payment successful",
        "owned": "You have access to this content.",
        "qr": "Scan with WeChat to pay",
        "requested": "Requested",
        "approved": "Approved by finance",
        "sent": "Sent to Alipay",
        "money_back": "Money back on your account",
        "notice": "Your refund request was sent.",
    },
    "zh_CN": {
        "switch": "简体中文",
        "me": ["我的内容", "我的订单"],
        "cashier": ["收银台", "选择支付方式", "安全提示", "¥99.00"],
        "success": "支付成功",
        "owned": "您已开通此内容。",
        "qr": "请使用微信扫一扫完成支付",
        "requested": "已提交退款申请",
        "approved": "财务已审核通过",
        "sent": "已提交至支付宝",
        "money_back": "退款已到账",
        "notice": "退款申请已提交。",
    },
}


@dataclass
class Demo:
    base: str
    state: dict[str, Any]
    api: httpx.Client

    def login(self, who: str) -> dict[str, str]:
        email, password, _role = DEMO_PEOPLE[who]
        response = self.api.post("/v1/auth/token", json={"username": email, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def app_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.state['api_key']}"}

    def buyer_id(self) -> str:
        token = self.login("buyer")["Authorization"].split()[1]
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])

    def order(self, product_index: int) -> str:
        body = {
            "user_id": self.buyer_id(),
            "items": [{"product_id": self.state["product_ids"][product_index]}],
            "currency": "CNY",
        }
        response = self.api.post("/v1/orders", json=body, headers=self.app_headers())
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def payments(self, order_id: str) -> list[dict[str, Any]]:
        response = self.api.get(f"/v1/orders/{order_id}/payments", headers=self.app_headers())
        data: list[dict[str, Any]] = response.json()["data"]
        return data


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`knowpay demo` in a subprocess, in an empty working directory, on a free port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWPAY_")}
    env.update(
        KNOWPAY_PUBLIC_URL=base,
        KNOWPAY_SECRET_KEY="browser-test-secret-0123456789abcdefghijkl",
        KNOWPAY_PASSWORD_HASH__TIME_COST="1",
        KNOWPAY_PASSWORD_HASH__MEMORY_COST_KIB="64",
        KNOWPAY_PASSWORD_HASH__PARALLELISM="1",
        KNOWPAY_RATE_LIMITS__ENABLED="false",
        # A refund of content the buyer opened waits for finance, whatever its size.
        KNOWPAY_REFUNDS__AUTO_APPROVE_MAX_MINOR="0",
    )
    log = (tmp_path / "demo.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "knowpay.cli.main", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "knowpay demo did not start"
            time.sleep(0.3)
        state = json.loads((tmp_path / "var" / "demo.json").read_text(encoding="utf-8"))
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as api:
            yield Demo(base, state, api)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Shots:
    """One numbered screenshot per step."""

    def __init__(self, language: str) -> None:
        self.folder = ARTIFACTS / language
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def __call__(self, page: Any, name: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)


def approve_in_console(browser: Any, demo: Demo, refund_id: str, folder: Path) -> None:
    """A finance user approves the refund in the staff console (/admin/refunds), in a
    browser context of their own (the buyer's session stays where it is); the console's
    steps live in tests/web/console_steps.py."""
    from tests.web.console_steps import approve_in_console as console_approves

    email, password, _role = DEMO_PEOPLE["finance"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        console_approves(
            context.new_page(),
            demo.base,
            email,
            password,
            refund_id,
            screenshot=folder / "console-refund-approved.png",
        )
    finally:
        context.close()
    response = demo.api.get(f"/v1/refunds/{refund_id}", headers=demo.app_headers())
    assert response.json()["status"] in ("processing", "succeeded"), response.text


def wait_for_text(page: Any, text: str, timeout_s: float = 30, reload: bool = False) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in page.inner_text("body"):
        assert time.monotonic() < deadline, f"{text!r} never appeared on {page.url}"
        if reload:
            page.reload()
        page.wait_for_timeout(500)


def check_language(page: Any, language: str) -> None:
    if language == "zh_CN":
        assert untranslated(page.content()) == [], page.url


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_buyer_flow_in_a_real_browser(demo: Demo, language: str) -> None:
    texts = TEXTS[language]
    shots = Shots(language)
    buyer_email, buyer_password, _role = DEMO_PEOPLE["buyer"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        context = browser.new_context(
            locale="zh-CN" if language == "zh_CN" else "en-US",
            viewport={"width": 420, "height": 860},  # a phone-sized window
        )
        page = context.new_page()
        errors: list[str] = []
        context.on(
            "console",
            lambda m: (
                errors.append(f"{m.location.get('url')}: {m.text}") if m.type == "error" else None
            ),
        )

        # 1. Log in; pick the language with the switcher (it becomes the account's).
        page.goto(f"{demo.base}/login")
        shots(page, "login")
        page.fill("#email", buyer_email)
        page.fill("#password", buyer_password)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{demo.base}/me")
        page.click(f"form.lang-switch button:has-text('{texts['switch']}')")
        page.wait_for_url(f"{demo.base}/me")
        for text in texts["me"]:
            assert text in page.inner_text("body")
        check_language(page, language)
        shots(page, "buyer-center")

        # 2. A course with sandbox Alipay: redirect, pay on the simulator, come back.
        course_order = demo.order(0)
        page.goto(f"{demo.base}/pay/{course_order}")
        body = page.inner_text("body")
        for text in texts["cashier"]:
            assert text in body, text
        check_language(page, language)
        shots(page, "cashier-course")
        page.click("button[data-channel='alipay_page']")
        page.wait_for_url("**/sandbox/alipay/**")
        shots(page, "alipay-simulator-cashier")
        page.click("button.pay")
        try:
            page.wait_for_url(f"{demo.base}/pay/{course_order}")
        except Exception:
            shots(page, "debug-after-alipay")
            raise AssertionError(page.url + "\n" + page.inner_text("body")) from None
        page.wait_for_selector("#result-success", timeout=30000)
        assert texts["success"] in page.inner_text("body")
        check_language(page, language)
        shots(page, "alipay-success")

        # 3. Open the course in "my content".
        page.click("#result-success a.button")
        page.wait_for_url(f"{demo.base}/me#content")
        page.click("#content a.content-link:has-text('Python')")
        page.wait_for_selector("text=" + texts["owned"])
        shots(page, "course-opened")

        # 4. Another product with WeChat Native: QR here, pay on the "scan" page in a
        #    second tab, and the cashier flips to success by itself.
        column_order = demo.order(1)
        page.goto(f"{demo.base}/pay/{column_order}")
        page.click("button[data-channel='wechat_native']")
        page.wait_for_selector("#qr svg")
        assert texts["qr"] in page.inner_text("body")
        check_language(page, language)
        shots(page, "wechat-qr")
        [payment] = demo.payments(column_order)
        code_url = payment["action"]["code_url"]
        assert code_url.startswith("weixin://")
        phone = context.new_page()
        phone.goto(f"{demo.base}/sandbox/wechatpay/scan?code_url={quote(code_url, safe='')}")
        shots(phone, "wechat-simulator-scan")
        phone.click("button.pay")
        phone.wait_for_load_state()
        shots(phone, "wechat-simulator-paid")
        phone.close()
        page.wait_for_selector("#result-success", timeout=30000)  # no reload by the test
        assert texts["success"] in page.inner_text("body")
        shots(page, "wechat-success-live")

        # 5. Ask for a refund of the course in the buyer center.
        page.goto(f"{demo.base}/me")
        order_box = page.locator(f"#order-{course_order}")
        order_box.locator("details.refund-form summary").click()
        order_box.locator("select[name=reason]").select_option("no_longer_needed")
        shots(page, "refund-form")
        order_box.locator("form[action='/me/refunds'] button[type=submit]").click()
        page.wait_for_selector("text=" + texts["notice"])
        assert texts["requested"] in page.locator(f"#order-{course_order}").inner_text()
        check_language(page, language)
        shots(page, "refund-requested")
        refunds = demo.api.get(
            f"/v1/refunds?order_id={course_order}", headers=demo.app_headers()
        ).json()["data"]
        assert [r["status"] for r in refunds] == ["pending_approval"]

        # 6. Finance approves (in the console: see the hook), the buyer sees the money back.
        approve_in_console(browser, demo, refunds[0]["id"], shots.folder)
        wait_for_text(page, texts["money_back"], reload=True)
        timeline = page.locator(f"#order-{course_order} .timeline").inner_text()
        for key in ("requested", "approved", "sent", "money_back"):
            assert texts[key] in timeline, (key, timeline)
        check_language(page, language)
        shots(page, "refund-money-back")

        # knowpay's own pages run under the strict CSP without a single violation (the
        # simulators' pages, standing in for the gateways' sites, are not ours to judge).
        ours = [e for e in errors if "/sandbox/" not in e.split(": ", 1)[0]]
        assert not [e for e in ours if "Content Security Policy" in e], ours
        context.close()
        browser.close()
