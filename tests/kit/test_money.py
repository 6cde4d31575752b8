"""Money is exact: integer minor units, exponents from ISO 4217, no float anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knowpay.kit.money import (
    MAX_AMOUNT_MINOR,
    CurrencyMismatch,
    Money,
    MoneyError,
    currency_exponent,
    known_currencies,
)

currencies = st.sampled_from(sorted(known_currencies()))
amounts = st.integers(min_value=-(10**15), max_value=10**15)
moneys = st.builds(Money, amounts, currencies)


def test_exponents_come_from_the_standard() -> None:
    assert currency_exponent("CNY") == 2
    assert currency_exponent("USD") == 2
    assert currency_exponent("JPY") == 0
    assert currency_exponent("KRW") == 0
    assert currency_exponent("BHD") == 3
    assert currency_exponent("cny") == 2


def test_exponents_are_iso_4217_minor_units_not_cldr_display_digits() -> None:
    """CLDR (Babel 2.19) shows HUF, IDR and COP without decimals and IQD without its three;
    a stored amount in minor units must keep ISO 4217's meaning whatever Babel shows."""
    assert currency_exponent("HUF") == 2
    assert currency_exponent("IDR") == 2
    assert currency_exponent("COP") == 2
    assert currency_exponent("IQD") == 3
    assert Money.parse("175.00", "HUF") == Money(17500, "HUF")
    assert "XAU" not in known_currencies()  # gold is no tender


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.30", "CNY", 1230),
        ("0.01", "CNY", 1),
        ("1200", "JPY", 1200),
        ("12.3", "USD", 1230),
        ("100", "CNY", 10000),
        ("1.234", "BHD", 1234),
        ("0", "USD", 0),
        ("-5.00", "CNY", -500),
    ],
)
def test_parses_gateway_decimal_strings_exactly(text: str, currency: str, minor: int) -> None:
    assert Money.parse(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("0.001", "CNY"),
        ("12.5", "JPY"),
        ("1e3", "CNY"),
        ("", "CNY"),
        ("abc", "CNY"),
        ("1,000.00", "CNY"),
        ("NaN", "CNY"),
        ("Infinity", "USD"),
        (" ", "USD"),
        ("1.2.3", "USD"),
        ("１２.３０", "CNY"),  # fullwidth digits: Decimal() reads 12.30, no gateway writes them
        ("٣", "CNY"),  # an Arabic-Indic 3
    ],
)
def test_refuses_what_is_not_exact(text: str, currency: str) -> None:
    with pytest.raises(MoneyError):
        Money.parse(text, currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("9" * 5000, "CNY"),  # found by fuzzing a notification: its mismatch message was a 500
        ("9" * 999_999, "CNY"),  # fits in a request body; scaling it overflowed Decimal: a 500
        (str(MAX_AMOUNT_MINOR + 1), "JPY"),
        ("-" + str(MAX_AMOUNT_MINOR + 1), "JPY"),
        ("92233720368547758.08", "CNY"),
    ],
)
def test_refuses_an_amount_no_amount_column_holds(text: str, currency: str) -> None:
    with pytest.raises(MoneyError, match="out of range"):
        Money.parse(text, currency)


def test_parses_the_largest_amount_a_column_holds() -> None:
    assert Money.parse(str(MAX_AMOUNT_MINOR), "JPY").amount_minor == MAX_AMOUNT_MINOR
    assert Money.parse("92233720368547758.07", "CNY").amount_minor == MAX_AMOUNT_MINOR


def test_formats_with_exactly_the_currency_digits() -> None:
    assert Money(1230, "CNY").to_decimal_string() == "12.30"
    assert Money(1, "CNY").to_decimal_string() == "0.01"
    assert Money(1200, "JPY").to_decimal_string() == "1200"
    assert Money(-5, "USD").to_decimal_string() == "-0.05"
    assert Money(1234, "BHD").to_decimal_string() == "1.234"


def test_refuses_unknown_currencies_and_non_integer_amounts() -> None:
    with pytest.raises(MoneyError):
        Money(100, "ABC")
    with pytest.raises(MoneyError):
        Money(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(True, "CNY")  # type: ignore[arg-type]


def test_refuses_to_mix_currencies() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(100, "CNY") + Money(100, "USD")
    with pytest.raises(CurrencyMismatch):
        _ = Money(100, "CNY") < Money(100, "USD")
    with pytest.raises(TypeError):
        Money(100, "CNY") * 1.5  # type: ignore[operator]


@given(moneys)
def test_parse_of_format_is_identity_for_every_currency(money: Money) -> None:
    assert Money.parse(money.to_decimal_string(), money.currency) == money


@given(amounts, amounts, currencies)
def test_addition_and_subtraction_lose_no_minor_unit(a: int, b: int, currency: str) -> None:
    total = Money(a, currency) + Money(b, currency)
    assert total.amount_minor == a + b
    assert (total - Money(b, currency)) == Money(a, currency)


@given(moneys, st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=12))
def test_allocation_sums_to_the_whole(money: Money, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights = [*weights[:-1], 1]
    parts = money.allocate(weights)
    assert sum(p.amount_minor for p in parts) == money.amount_minor
    assert all(p.currency == money.currency for p in parts)
    exact = [money.amount_minor * w / sum(weights) for w in weights]
    assert all(abs(p.amount_minor - e) < 1 for p, e in zip(parts, exact, strict=True))
