"""Pages show an amount with every digit of its currency's minor unit, never rounded."""

from __future__ import annotations

import pytest

from knowpay.kit.money import Money, known_currencies
from knowpay.web.templating import format_money


@pytest.mark.parametrize(
    ("amount_minor", "currency", "locale", "shown"),
    [
        (9900, "CNY", "zh_CN", "¥99.00"),
        (9900, "CNY", "en", "CN¥99.00"),
        (1499, "USD", "zh_CN", "US$14.99"),
        (1234, "JPY", "en", "¥1,234"),
        (1234, "BHD", "en", "BHD1.234"),
        # CLDR shows these with fewer decimals than ISO 4217 charges them in.
        (123456, "HUF", "en", "HUF1,234.56"),
        (1234, "IQD", "en", "IQD1.234"),
        (150, "IDR", "zh_CN", "IDR1.50"),
        (-9900, "CNY", "en", "-CN¥99.00"),
    ],
)
def test_an_amount_is_shown_in_the_pages_locale_with_its_minor_unit(
    amount_minor: int, currency: str, locale: str, shown: str
) -> None:
    assert format_money(amount_minor, currency, locale) == shown


@pytest.mark.parametrize("currency", sorted(known_currencies()))
def test_no_currency_is_shown_rounded(currency: str) -> None:
    money = Money(1234567, currency)

    shown = format_money(money.amount_minor, currency, "en").replace(",", "")

    assert money.to_decimal_string() in shown
