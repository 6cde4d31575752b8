"""The console's report pages against hostile or odd input: CSV cells that a spreadsheet
would run as formulas, and periods at the ends of the calendar."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from fastapi import FastAPI
from sqlalchemy import update

from knowpay.accounts.models import User
from knowpay.auth.principals import Role
from knowpay.kit.clock import FrozenClock
from knowpay.kit.db import Database
from knowpay.web.console.pages import _date
from knowpay.web.console.reports import Period, csv_bytes
from tests.builders import Builders, Shop
from tests.web.test_console import staff_browser

FORMULA = '=HYPERLINK("http://evil.example/?a@b","Open")'


def _rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_csv_text_cells_that_start_a_formula_are_written_as_text() -> None:
    rows = _rows(
        csv_bytes(
            ["=name", "amount"],
            [
                ("=1+1", Decimal("-1.00")),
                ("+86 138", -3),
                ("-2", 1.5),
                ("@SUM(A1)", None),
                ("\tx", Decimal("0.00")),
                ("\rx", "a-b"),
            ],
        )
    )
    assert rows == [
        ["'=name", "amount"],
        ["'=1+1", "-1.00"],  # a number stays a number, minus sign and all
        ["'+86 138", "-3"],
        ["'-2", "1.5"],  # "-2" as text is text: it is quoted, whatever it looks like
        ["'@SUM(A1)", ""],
        ["'\tx", "0.00"],
        ["'\rx", "a-b"],
    ]


def test_a_creator_email_that_is_a_formula_is_exported_as_text(
    app: FastAPI, build: Builders, database: Database
) -> None:
    shop = Shop(build)
    creator = build.buyer(shop.app)
    with database.session_scope() as session:
        session.execute(update(User).where(User.id == creator.id).values(email=FORMULA))
    product = build.product(shop.app, creator_id=creator.id)
    shop.confirm(shop.pay(shop.order(product)))
    browser, _ = staff_browser(app, build, Role.ADMIN)
    answer = browser.get("/admin/reports/creators", params={"format": "csv"})
    assert answer.status_code == 200, answer.text
    rows = _rows(answer.content)
    assert rows[1] == [creator.id, "'" + FORMULA, "CNY", "1", "99.00", "0.00", "99.00"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/admin/reports/success-rate", {"end": "0001-01-10"}),
        ("/admin/reports/refund-rate", {"start": "0001-01-01", "end": "0001-01-01"}),
        ("/admin/reports/revenue", {"end": "0001-01-15"}),
        ("/admin/reports/creators", {"end": "0001-01-01", "format": "csv"}),
        ("/admin/reports/channel-mix", {"start": "9999-12-31", "end": "9999-12-31"}),
        ("/admin/reports/revenue", {"start": "9999-12-01", "end": "9999-12-31"}),
        ("/admin", {"start": "0001-01-01", "end": "9999-12-31"}),
        ("/admin", {"start": "9999-12-31", "end": "0001-01-01"}),
        ("/admin/audit", {"start": "0001-01-01", "end": "9999-12-31"}),
        ("/admin/audit", {"start": "9999-12-31", "end": "0001-01-01"}),
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_kept_in_range_not_a_500(
    app: FastAPI, build: Builders, path: str, params: dict[str, str]
) -> None:
    browser, _ = staff_browser(app, build, Role.ADMIN)
    answer = browser.get(path, params=params)
    assert answer.status_code == 200, answer.text[:500]


def test_a_report_period_before_1970_is_clamped_to_1970() -> None:
    period = Period.of(None, _date("0001-01-10"), date(2026, 11, 27), "Asia/Shanghai")
    assert period.days() == [date(1970, 1, 1)]
    assert _date("9999-12-31") == date(9999, 12, 30)
    assert _date("2026-02-30") is None  # malformed is still no date


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-11-28", "2026-11-27", [date(2026, 11, 28)]),
        ("2026-11-28", "2026-11-28", [date(2026, 11, 28)]),
        ("9999-12-31", "9999-12-31", [date(9999, 12, 30)]),
        ("0001-01-01", "0001-01-10", [date(1970, 1, 1)]),
        ("2026-11-01", "2026-11-03", [date(2026, 11, 1), date(2026, 11, 2)]),
    ],
)
def test_a_report_shows_no_day_outside_the_typed_period(
    start: str, end: str, days: list[date]
) -> None:
    """Found by a browser audit: an end typed before the start showed the day before the end
    (2026-11-26 for 28 → 27), and the calendar's ends showed days nobody typed."""
    period = Period.of(_date(start), _date(end), date(2026, 11, 27), "Asia/Shanghai")
    assert period.days() == days


def test_console_date_filters_and_reports_count_days_as_the_console_shows_them(
    app: FastAPI, build: Builders, clock: FrozenClock
) -> None:
    """Found by a web audit: the filters used UTC days while every time is shown in Beijing
    time, so an order made at 07:00 on the 27th (23:00 UTC on the 26th) was not found by a
    search for the 27th."""
    clock.set(datetime(2026, 11, 26, 23, 0, tzinfo=UTC))  # 2026-11-27 07:00 in Beijing
    shop = Shop(build)
    order = shop.order()
    shop.confirm(shop.pay(order))
    browser, _ = staff_browser(app, build, Role.ADMIN)
    the_27th = {"start": "2026-11-27", "end": "2026-11-28"}
    the_26th = {"start": "2026-11-26", "end": "2026-11-27"}
    assert order["id"] in browser.get("/admin", params=the_27th).text
    assert order["id"] not in browser.get("/admin", params=the_26th).text
    listed = f"order {order['id']}</td>"
    audit = browser.get("/admin/audit", params={**the_27th, "object_id": order["id"]})
    assert listed in audit.text
    audit = browser.get("/admin/audit", params={**the_26th, "object_id": order["id"]})
    assert listed not in audit.text
    rows = _rows(
        browser.get(
            "/admin/reports/success-rate", params={**the_26th, "end": "2026-11-28", "format": "csv"}
        ).content
    )
    assert [row[:3] for row in rows[1:]] == [["2026-11-26", "0", "0"], ["2026-11-27", "1", "1"]]
    mix = browser.get("/admin/reports/channel-mix", params={**the_27th, "format": "csv"})
    assert _rows(mix.content)[1][:3] == ["test", "CNY", "1"]
    revenue = browser.get(
        "/admin/reports/revenue", params={**the_26th, "end": "2026-11-28", "format": "csv"}
    )
    assert [row[:3] for row in _rows(revenue.content)[1:]] == [["2026-11-27", "CNY", "99.00"]]
    # Today is the console's today: the default period ends after the 27th, Beijing time.
    default = browser.get("/admin/reports/success-rate", params={"format": "csv"})
    assert default.headers["content-disposition"].endswith('-2026-10-29-2026-11-28.csv"')


def test_revenue_per_creator_shares_a_refund_among_lines_without_losing_a_fen(
    app: FastAPI, build: Builders, database: Database
) -> None:
    """A 1.00 refund of an order of three 1.00 lines used to be shared as 0.33 × 3: the
    report's refunds came to 0.99 and its net to a fen more than the ledger's."""
    shop = Shop(build)
    products = [
        build.product(
            shop.app,
            creator_id=build.buyer(shop.app).id,
            prices=[{"amount": 100, "currency": "CNY"}],
        )
        for _ in range(3)
    ]
    order = shop.order(*products)
    shop.confirm(shop.pay(order))
    refund = shop.client.post(
        "/v1/refunds",
        json={"order_id": order["id"], "amount": 100, "reason": "other"},
        headers=shop.app.headers,
    )
    assert refund.json()["status"] == "succeeded", refund.text
    browser, _ = staff_browser(app, build, Role.ADMIN)
    answer = browser.get("/admin/reports/creators", params={"format": "csv"})
    assert answer.status_code == 200, answer.text
    lines = _rows(answer.content)[1:]
    assert sorted(line[5] for line in lines) == ["0.33", "0.33", "0.34"]
    assert sum(Decimal(line[6]) for line in lines) == Decimal("2.00")  # 3.00 captured − 1.00
