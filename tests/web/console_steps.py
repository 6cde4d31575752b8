"""Steps in the staff console for the browser tests (Playwright): finance approves a refund.

Called by tests/web/test_browser_flows.py; it drives the same pages a person uses."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

DEFAULT_SCREENSHOT = Path("test-artifacts") / "console-refund-approved.png"


def approve_in_console(
    page: Page,
    base_url: str,
    finance_email: str,
    finance_password: str,
    refund_id: str,
    *,
    screenshot: Path = DEFAULT_SCREENSHOT,
) -> Path:
    """Log in as finance, open the refund approval queue, approve `refund_id`, and save a
    screenshot of the queue with the console's confirmation. Returns the screenshot's path
    (a second one, `<name>-before.png`, shows the refund waiting in the queue)."""
    base = base_url.rstrip("/")
    page.goto(f"{base}/login?next=/admin/refunds")
    page.fill("input[name=email]", finance_email)
    page.fill("input[name=password]", finance_password)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin"))
    if "/admin/refunds" not in page.url:
        page.goto(f"{base}/admin/refunds")
    row = page.locator(f"#refund-{refund_id}")
    expect(row).to_be_visible()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(screenshot.with_name(f"{screenshot.stem}-before{screenshot.suffix}")),
        full_page=True,
    )
    row.locator("button[data-action=approve]").click()
    page.wait_for_url(re.compile(r"/admin/refunds\?done=refund_approved"))
    expect(page.locator(".console .notice")).to_be_visible()
    expect(page.locator(f"#refund-{refund_id}")).to_have_count(0)
    page.screenshot(path=str(screenshot), full_page=True)
    return screenshot
