"""The ledger: balanced entries only, append-only in the database, and a check that names
what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from knowpay.cli.main import app as cli
from knowpay.kit.clock import day_start
from knowpay.kit.config import Settings, get_settings
from knowpay.kit.db import Database
from knowpay.kit.money import Money
from knowpay.ledger import service as ledger
from knowpay.ledger.accounts import PLATFORM_REVENUE
from knowpay.ledger.errors import UnbalancedEntry
from knowpay.ledger.service import Leg
from tests import books
from tests.builders import Builders, Shop

NOW = datetime(2026, 1, 1, tzinfo=UTC)
runner = CliRunner()


def test_refuses_entries_that_do_not_balance_per_currency(database: Database) -> None:
    with database.session_scope() as session:
        with pytest.raises(UnbalancedEntry):
            ledger.post_entry(
                session,
                kind="x",
                now=NOW,
                legs=[Leg("a", Money(100, "CNY")), Leg("b", Money(-99, "CNY"))],
            )
        with pytest.raises(UnbalancedEntry):
            # Balanced in sum but across two currencies: not balanced per currency.
            ledger.post_entry(
                session,
                kind="x",
                now=NOW,
                legs=[Leg("a", Money(100, "CNY")), Leg("b", Money(-100, "USD"))],
            )
        with pytest.raises(UnbalancedEntry):
            ledger.post_entry(
                session,
                kind="x",
                now=NOW,
                legs=[Leg("a", Money(0, "CNY")), Leg("b", Money(0, "CNY"))],
            )
        entry = ledger.post_entry(
            session,
            kind="x",
            now=NOW,
            legs=[
                Leg("a", Money(100, "CNY")),
                Leg("b", Money(-60, "CNY")),
                Leg("c", Money(-40, "CNY")),
            ],
        )
        assert entry.startswith("je_")
    with database.session_scope(read_only=True) as session:
        assert ledger.balance(session, "b", "CNY") == Money(-60, "CNY")
        assert ledger.check_entries(session) == []


def _post_one(database: Database) -> str:
    with database.session_scope() as session:
        return ledger.post_entry(
            session, kind="x", now=NOW, legs=[Leg("a", Money(5, "CNY")), Leg("b", Money(-5, "CNY"))]
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET amount_minor = 6",
        "DELETE FROM postings",
        "UPDATE journal_entries SET kind = 'y'",
        "DELETE FROM journal_entries",
    ],
)
def test_the_database_refuses_to_change_or_delete_postings(
    database: Database, statement: str
) -> None:
    _post_one(database)
    with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as connection:
        connection.execute(text(statement))


def test_postgresql_refuses_an_unbalanced_entry_at_commit(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip(
            "SQLite has no deferred constraint triggers; the check and the code guard it there"
        )
    with pytest.raises(DBAPIError, match="does not balance"):
        _insert_unbalanced_entry(database)


def _insert_unbalanced_entry(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO journal_entries (id, kind, created_at) VALUES ('je_raw', 'raw', now())"
            )
        )
        connection.execute(
            text(
                "INSERT INTO postings (entry_id, account, currency, amount_minor, created_at) "
                "VALUES ('je_raw', 'a', 'CNY', 100, now()), ('je_raw', 'b', 'CNY', -99, now())"
            )
        )


def _tamper(database: Database, sql: str) -> None:
    """What an attacker or a careless DBA with direct SQL access could do."""
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("ALTER TABLE postings DISABLE TRIGGER USER"))
            connection.execute(text(sql))
            connection.execute(text("ALTER TABLE postings ENABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER postings_no_update"))
            connection.execute(text(sql))


def _ledger_check(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, object]]:
    monkeypatch.setenv("KNOWPAY_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["ledger", "check", "--json"])
    finally:
        get_settings.cache_clear()
    return result.exit_code, json.loads(result.output)


def test_ledger_check_passes_on_consistent_books_and_names_a_tampered_entry(
    build: Builders, database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(build)
    for _ in range(3):
        shop.confirm(shop.pay(shop.order()))
    code, report = _ledger_check(settings, monkeypatch)
    assert (code, report) == (0, {"ok": True, "violations": []})

    victim = books.entries(database, kind="payment_captured")[1]
    _tamper(
        database,
        f"UPDATE postings SET amount_minor = amount_minor + 1 WHERE entry_id = '{victim.id}' "
        "AND amount_minor > 0",
    )
    code, report = _ledger_check(settings, monkeypatch)
    assert code == 1
    assert report["ok"] is False
    violations = report["violations"]
    assert isinstance(violations, list)
    assert {
        "rule": "entry_balances",
        "object_id": victim.id,
        "detail": "postings sum to 1 CNY, not 0",
    } in violations


def test_ledger_check_finds_an_order_that_disagrees_with_its_postings(
    build: Builders, database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(build)
    order = shop.order()
    shop.confirm(shop.pay(order))
    with database.engine.begin() as connection:
        connection.execute(
            text(f"UPDATE orders SET amount_minor = 9800 WHERE id = '{order['id']}'")
        )
    code, report = _ledger_check(settings, monkeypatch)
    assert code == 1
    rules = {(v["rule"], v["object_id"]) for v in report["violations"]}  # type: ignore[union-attr]
    assert ("order_matches_ledger", order["id"]) in rules


def test_ledger_check_finds_an_entitlement_in_force_whose_every_grant_was_taken_back(
    build: Builders, database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(build)
    shop.confirm(shop.pay(shop.order()))
    [entitlement] = books.entitlements(database, shop.buyer.id)
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE entitlement_grants SET revoked_at = created_at WHERE entitlement_id = :e"),
            {"e": entitlement.id},
        )
    code, report = _ledger_check(settings, monkeypatch)
    assert code == 1
    rules = {(v["rule"], v["object_id"]) for v in report["violations"]}  # type: ignore[union-attr]
    assert rules == {("entitlement_has_payment", entitlement.id)}


def _insert_raw(database: Database, *statements: str) -> None:
    """Rows written past the ledger service (and, on PostgreSQL, past its balance trigger)."""
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("ALTER TABLE postings DISABLE TRIGGER USER"))
        for statement in statements:
            connection.execute(text(statement))
        if database.dialect == "postgresql":
            connection.execute(text("ALTER TABLE postings ENABLE TRIGGER USER"))


def _rules(database: Database) -> set[tuple[str, str, str]]:
    with database.session_scope(read_only=True) as session:
        return {(v.rule, v.object_id, v.detail) for v in ledger.check_entries(session)}


def test_the_check_names_an_entry_whose_postings_sum_below_zero(
    build: Builders, database: Database
) -> None:
    shop = Shop(build)
    shop.confirm(shop.pay(shop.order()))
    [victim] = books.entries(database, kind="payment_captured")
    _tamper(
        database,
        f"UPDATE postings SET amount_minor = amount_minor - 1 WHERE entry_id = '{victim.id}' "
        "AND amount_minor > 0",
    )
    assert _rules(database) == {("entry_balances", victim.id, "postings sum to -1 CNY, not 0")}


def test_the_check_names_an_entry_without_postings(database: Database) -> None:
    _insert_raw(
        database,
        "INSERT INTO journal_entries (id, kind, created_at) "
        "VALUES ('je_empty', 'raw', '2026-01-01 00:00:00')",
    )
    assert _rules(database) == {("entry_has_postings", "je_empty", "no postings")}


def test_the_check_names_an_entry_with_a_single_posting(database: Database) -> None:
    _insert_raw(
        database,
        "INSERT INTO journal_entries (id, kind, created_at) "
        "VALUES ('je_single', 'raw', '2026-01-01 00:00:00')",
        "INSERT INTO postings (entry_id, account, currency, amount_minor, created_at) "
        "VALUES ('je_single', 'a', 'CNY', 100, '2026-01-01 00:00:00')",
    )
    assert _rules(database) == {
        ("entry_balances", "je_single", "postings sum to 100 CNY, not 0"),
        ("entry_is_double", "je_single", "fewer than two postings"),
    }


def test_daily_totals_count_the_windows_first_instant_and_not_the_first_instant_after_it(
    database: Database,
) -> None:
    """Days are [start, end): revenue booked at the next period's midnight belongs to the next
    report, not to both."""
    zone, start, end = "Asia/Shanghai", date(2026, 1, 1), date(2026, 1, 2)
    with database.session_scope() as session:
        for at, amount in ((day_start(start, zone), 100), (day_start(end, zone), 7)):
            ledger.post_entry(
                session,
                kind="x",
                now=at,
                legs=[Leg(PLATFORM_REVENUE, Money(-amount, "CNY")), Leg("b", Money(amount, "CNY"))],
            )
    with database.session_scope(read_only=True) as session:
        totals = ledger.daily_totals(session, PLATFORM_REVENUE, start, end, zone)
    assert totals == [ledger.DailyTotal(start, "CNY", -100)]


def test_a_capture_entry_of_no_payment_or_of_an_unpaid_one_is_named_by_its_entry(
    build: Builders, database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an operations audit: a capture entry without a payment was reported with
    `object_id` "None", naming nothing."""
    shop = Shop(build)
    pending = shop.pay(shop.order())
    _insert_raw(
        database,
        "INSERT INTO journal_entries (id, kind, created_at) "
        "VALUES ('je_nobody', 'payment_captured', '2026-01-01 00:00:00')",
        f"INSERT INTO journal_entries (id, kind, payment_id, created_at) "
        f"VALUES ('je_unpaid', 'payment_captured', '{pending['id']}', '2026-01-01 00:00:00')",
    )
    code, report = _ledger_check(settings, monkeypatch)
    assert code == 1
    found = {
        (v["rule"], v["object_id"], v["detail"])  # type: ignore[index]
        for v in report["violations"]  # type: ignore[union-attr]
        if v["rule"] == "capture_has_payment"  # type: ignore[index]
    }
    assert found == {
        ("capture_has_payment", "je_nobody", "capture entry for no payment, which did not succeed"),
        (
            "capture_has_payment",
            "je_unpaid",
            f"capture entry for payment {pending['id']}, which did not succeed",
        ),
    }
