"""Multi-currency: orders are charged in their own currency at their catalog price; dated
exchange rates only translate revenue into a base currency for reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from knowpay.auth.principals import Role
from knowpay.cli.main import app as cli
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.db import Database
from knowpay.ledger import service as ledger_service
from knowpay.reports.service import convert_minor, revenue
from tests.builders import Builders, Shop
from tests.openapi_conformance import assert_documented

pytestmark = pytest.mark.db


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def put_rates(client: TestClient, headers: dict[str, str], *rates: dict[str, str]) -> None:
    answer = client.put("/v1/admin/exchange-rates", json={"rates": list(rates)}, headers=headers)
    assert answer.status_code == 200, answer.text


def test_translation_to_a_base_currency_keeps_each_currencys_minor_unit() -> None:
    assert convert_minor(1000, "JPY", Decimal("0.048"), "CNY") == 4800  # ¥1,000 → ¥48.00
    assert convert_minor(1999, "USD", Decimal("7.1234"), "CNY") == 14240  # half-even at fen
    assert convert_minor(14240, "CNY", Decimal("20.83"), "JPY") == 2966  # fen → whole yen
    assert convert_minor(100, "BHD", Decimal("1"), "BHD") == 100  # three decimals kept


def test_rates_translate_revenue_for_reports_and_never_change_what_buyers_pay(
    shop: Shop, client: TestClient, clock: FrozenClock
) -> None:
    product = shop.build.product(
        shop.app,
        prices=[
            {"amount": 9900, "currency": "CNY"},
            {"amount": 1999, "currency": "USD"},
            {"amount": 1000, "currency": "JPY"},
        ],
    )
    finance = shop.build.staff(Role.FINANCE)
    today = clock.now().date().isoformat()
    put_rates(
        client,
        finance.headers,
        {"currency": "USD", "base_currency": "CNY", "rate": "7.1234", "date": today},
        {"currency": "JPY", "base_currency": "CNY", "rate": "0.048", "date": "2020-01-01"},
    )
    paid = {}
    for currency in ("USD", "JPY", "CNY"):
        order = shop.order(product, currency=currency)
        shop.confirm(shop.pay(order))
        paid[currency] = shop.get(f"/v1/orders/{order['id']}")
    assert {c: (o["amount"], o["status"]) for c, o in paid.items()} == {
        "USD": (1999, "paid"),
        "JPY": (1000, "paid"),
        "CNY": (9900, "paid"),
    }

    report = client.get(
        "/v1/admin/reports/revenue", params={"base_currency": "CNY"}, headers=finance.headers
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert {t["currency"]: t["amount"] for t in body["totals"]} == {
        "CNY": 9900,
        "JPY": 1000,
        "USD": 1999,
    }
    by_currency = {d["currency"]: d for d in body["days"]}
    assert by_currency["USD"]["base_amount"] == 14240
    assert by_currency["JPY"]["base_amount"] == 4800  # the latest rate on or before the day
    assert by_currency["CNY"]["base_amount"] == 9900
    assert body["base_total"] == 14240 + 4800 + 9900
    assert body["missing_rates"] == []

    in_usd = client.get(
        "/v1/admin/reports/revenue", params={"base_currency": "usd"}, headers=finance.headers
    ).json()
    assert in_usd["base_total"] == 1999  # no CNY→USD or JPY→USD rate is known
    assert sorted(m.split("@")[0] for m in in_usd["missing_rates"]) == ["CNY", "JPY"]


def test_a_newer_rate_for_the_same_day_replaces_the_old_one(shop: Shop, client: TestClient) -> None:
    admin = shop.build.staff(Role.ADMIN)
    rate = {"currency": "EUR", "base_currency": "CNY", "rate": "7.70", "date": "2026-11-20"}
    put_rates(client, admin.headers, rate)
    put_rates(client, admin.headers, {**rate, "rate": "7.71"})
    listed = client.get(
        "/v1/admin/exchange-rates", params={"currency": "EUR"}, headers=admin.headers
    ).json()["data"]
    assert [(r["rate"], r["date"]) for r in listed] == [("7.71", "2026-11-20")]


@pytest.mark.parametrize(
    ("rate", "field"),
    [
        ({"currency": "USD", "base_currency": "CNY", "rate": "0", "date": "2026-11-20"}, "rate"),
        ({"currency": "USD", "base_currency": "CNY", "rate": "-1", "date": "2026-11-20"}, "rate"),
        # Decimal("…") would read these as 7100, 7 and 7.1: a rate is written in ASCII digits.
        (
            {"currency": "USD", "base_currency": "CNY", "rate": "7_100", "date": "2026-11-20"},
            "rate",
        ),
        ({"currency": "USD", "base_currency": "CNY", "rate": "７", "date": "2026-11-20"}, "rate"),
        ({"currency": "USD", "base_currency": "CNY", "rate": " 7.1", "date": "2026-11-20"}, "rate"),
        (
            {"currency": "XYZ", "base_currency": "CNY", "rate": "1", "date": "2026-11-20"},
            "currency",
        ),
        ({"currency": "USD", "base_currency": "CNY", "rate": "1", "date": "tomorrow"}, "date"),
    ],
)
def test_a_bad_rate_is_refused_and_nothing_is_stored(
    shop: Shop, client: TestClient, rate: dict[str, str], field: str
) -> None:
    admin = shop.build.staff(Role.ADMIN)
    answer = client.put("/v1/admin/exchange-rates", json={"rates": [rate]}, headers=admin.headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in json.dumps(answer.json()["errors"])
    assert client.get("/v1/admin/exchange-rates", headers=admin.headers).json()["data"] == []


@pytest.mark.parametrize(
    ("period", "field"),
    [
        ({"end": "0001-01-01"}, "end"),
        ({"end": "0001-01-30"}, "end"),
        ({"start": "0001-01-01", "end": "1970-01-02"}, "start"),
        ({"start": "1969-12-31", "end": "1970-01-02"}, "start"),
        ({"start": "9999-12-01", "end": "9999-12-31"}, "end"),
        ({"start": "9999-12-31"}, "start"),
    ],
)
def test_a_report_day_beyond_1970_to_9999_12_30_is_a_422_naming_it_not_a_500(
    shop: Shop, client: TestClient, period: dict[str, str], field: str
) -> None:
    finance = shop.build.staff(Role.FINANCE)
    answer = client.get("/v1/admin/reports/revenue", params=period, headers=finance.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    edges = {"start": "1970-01-01", "end": "9999-12-30"}
    widest = client.get("/v1/admin/reports/revenue", params=edges, headers=finance.headers)
    assert widest.status_code == 422  # longer than a report may be, but no overflow
    assert widest.json()["code"] == "invalid_period"
    last = {"start": "9999-12-29", "end": "9999-12-30"}
    assert (
        client.get("/v1/admin/reports/revenue", params=last, headers=finance.headers).json()["end"]
        == "9999-12-30"
    )


def test_revenue_days_are_the_days_of_the_configured_time_zone_not_utcs(
    shop: Shop, client: TestClient, clock: FrozenClock, app: FastAPI
) -> None:
    """limits.timezone is Asia/Shanghai here, as by default: a sale at 01:30 in Beijing
    belongs to that Beijing day, though it was still the day before in UTC; as the console's
    other reports and the spending limits count days."""
    for moment in ("2026-11-26T17:30:00+00:00", "2026-11-27T15:30:00+00:00"):
        clock.set(datetime.fromisoformat(moment))  # 01:30 and 23:30 on the 27th in Beijing
        shop.confirm(shop.pay(shop.order()))
    clock.set(datetime.fromisoformat("2026-11-27T16:30:00+00:00"))  # 00:30 on the 28th
    shop.confirm(shop.pay(shop.order()))

    finance = shop.build.staff(Role.FINANCE)
    period = {"start": "2026-11-26", "end": "2026-11-29"}
    report = client.get("/v1/admin/reports/revenue", params=period, headers=finance.headers)
    assert report.status_code == 200, report.text
    assert report.json()["timezone"] == "Asia/Shanghai"
    days = [(d["day"], d["currency"], d["amount"]) for d in report.json()["days"]]
    assert days == [("2026-11-27", "CNY", 19800), ("2026-11-28", "CNY", 9900)]
    assert_documented(app, "GET", "/v1/admin/reports/revenue", report)


class _PostgresWithoutTheZone:
    """sqlalchemy.func, but PostgreSQL is asked about a zone its time zone database lacks
    (as an older server's may lack one Python's knows): the days are then summed in Python."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sqlalchemy.func, name)

    def timezone(self, _zone: str, moment: Any) -> Any:
        return sqlalchemy.func.timezone("Nowhere/Unknown", moment)


@pytest.mark.parametrize("server_knows_the_zone", [True, False])
def test_revenue_days_follow_daylight_saving_in_zones_that_have_it(
    shop: Shop,
    clock: FrozenClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    server_knows_the_zone: bool,
) -> None:
    """New York's days are 23 hours long in March and 25 in November: sales half an hour
    either side of each local midnight land on the local day, whichever database sums them."""
    if not server_knows_the_zone:
        if database.dialect != "postgresql":
            pytest.skip("SQLite always sums the days in Python")
        monkeypatch.setattr(ledger_service, "func", _PostgresWithoutTheZone())
    for moment in (
        "2026-03-08T04:30:00+00:00",  # 23:30 EST, March 7
        "2026-03-08T05:30:00+00:00",  # 00:30 EST, March 8 (EDT from 02:00)
        "2026-11-01T03:30:00+00:00",  # 23:30 EDT, October 31
        "2026-11-01T04:30:00+00:00",  # 00:30 EDT, November 1 (EST from 02:00)
        "2026-11-02T04:30:00+00:00",  # 23:30 EST, November 1
        "2026-11-02T05:30:00+00:00",  # 00:30 EST, November 2
    ):
        clock.set(datetime.fromisoformat(moment))
        shop.confirm(shop.pay(shop.order()))
    with database.session_scope(read_only=True) as session:
        report = revenue(session, "CNY", date(2026, 3, 1), date(2026, 11, 3), "America/New_York")
    assert [(d.day.isoformat(), d.amount) for d in report.days] == [
        ("2026-03-07", 9900),
        ("2026-03-08", 9900),
        ("2026-10-31", 9900),
        ("2026-11-01", 19800),
        ("2026-11-02", 9900),
    ]


def test_only_finance_and_admins_set_rates_and_read_revenue(shop: Shop, client: TestClient) -> None:
    rate = {"currency": "USD", "base_currency": "CNY", "rate": "7", "date": "2026-11-20"}
    for caller in (shop.app, shop.buyer, shop.build.staff(Role.SUPPORT)):
        denied = client.put(
            "/v1/admin/exchange-rates", json={"rates": [rate]}, headers=caller.headers
        )
        assert denied.status_code == 403, denied.text
        report = client.get("/v1/admin/reports/revenue", headers=caller.headers)
        assert report.status_code == 403


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_settings")
def test_the_cli_loads_rates_from_a_csv_file(
    tmp_path: Path, shop: Shop, client: TestClient
) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text(
        "currency,base_currency,rate,date\nUSD,CNY,7.1,2026-11-24\nJPY,CNY,0.047,2026-11-24\n",
        encoding="utf-8",
    )
    loaded = CliRunner().invoke(cli, ["rates", "load", str(rates), "--json"])
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.output) == {"loaded": 2}
    admin = shop.build.staff(Role.ADMIN)
    listed = client.get("/v1/admin/exchange-rates", headers=admin.headers).json()["data"]
    assert sorted(r["currency"] for r in listed) == ["JPY", "USD"]

    broken = tmp_path / "broken.csv"
    broken.write_text("currency,base_currency,rate,date\nUSD,CNY,abc,2026-11-24\n", "utf-8")
    refused = CliRunner().invoke(cli, ["rates", "load", str(broken), "--json"])
    assert refused.exit_code == 2
    assert json.loads(refused.output)["error"]["code"] == "invalid_rates"


@pytest.mark.usefixtures("cli_settings")
@pytest.mark.parametrize(
    "content", ["[null]", "[1, 2]", "5", '{"rates": null}', '{"rate": []}', '"USD"', "[[]]"]
)
def test_the_cli_refuses_json_whose_rates_are_not_objects_as_invalid_rates_not_a_traceback(
    tmp_path: Path, content: str
) -> None:
    rates = tmp_path / "rates.json"
    rates.write_text(content, encoding="utf-8")
    refused = CliRunner().invoke(cli, ["rates", "load", str(rates), "--json"])
    assert refused.exit_code == 2, refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
    assert json.loads(refused.output)["error"]["code"] == "invalid_rates"


@pytest.mark.usefixtures("cli_settings")
def test_the_cli_loads_a_csv_saved_by_excel_with_a_byte_order_mark(
    tmp_path: Path, shop: Shop, client: TestClient
) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_bytes(
        "currency,base_currency,rate,date\r\nUSD,CNY,7.1,2026-11-24\r\n".encode("utf-8-sig")
    )
    loaded = CliRunner().invoke(cli, ["rates", "load", str(rates), "--json"])
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.output) == {"loaded": 1}
    admin = shop.build.staff(Role.ADMIN)
    listed = client.get("/v1/admin/exchange-rates", headers=admin.headers).json()["data"]
    assert [(r["currency"], r["base_currency"], r["rate"]) for r in listed] == [
        ("USD", "CNY", "7.1")
    ]


@pytest.mark.usefixtures("cli_settings")
def test_a_rate_of_a_currency_in_itself_is_refused_by_the_api_and_the_cli(
    tmp_path: Path, shop: Shop, client: TestClient, app: FastAPI
) -> None:
    admin = shop.build.staff(Role.ADMIN)
    same = {"currency": "usd", "base_currency": "USD", "rate": "3", "date": "2026-11-20"}
    answer = client.put("/v1/admin/exchange-rates", json={"rates": [same]}, headers=admin.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "currency and base_currency are both USD" in answer.json()["errors"][0]["message"]
    assert_documented(app, "PUT", "/v1/admin/exchange-rates", answer)

    rates = tmp_path / "rates.csv"
    rates.write_text("currency,base_currency,rate,date\nUSD,USD,3,2026-11-20\n", "utf-8")
    refused = CliRunner().invoke(cli, ["rates", "load", str(rates), "--json"])
    assert refused.exit_code == 2, refused.output
    assert json.loads(refused.output)["error"]["code"] == "invalid_rates"
    assert client.get("/v1/admin/exchange-rates", headers=admin.headers).json()["data"] == []
