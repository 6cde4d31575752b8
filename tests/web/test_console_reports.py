"""The console's report pages against hostile or odd input: CSV cells that a spreadsheet
would run as formulas, and periods at the ends of the calendar."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from fastapi import FastAPI
from sqlalchemy import update

from knowpay.accounts.models import User
from knowpay.auth.principals import Role
from knowpay.kit.db import Database
from knowpay.web.console.reports import csv_bytes
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
