"""The console's report pages against hostile or odd input: CSV cells that a spreadsheet
would run as formulas, and periods at the ends of the calendar."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from fastapi import FastAPI
from sqlalchemy import update

from knowpay.accounts.models import User
from knowpay.auth.principals import Role
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
    period = Period.of(None, _date("0001-01-10"), date(2026, 11, 27))
    assert (period.start, period.end) == (date(1969, 12, 2), date(1970, 1, 1))
    assert _date("9999-12-31") == date(9999, 12, 30)
    assert _date("2026-02-30") is None  # malformed is still no date
