"""Money: an integer count of a currency's minor unit plus its ISO 4217 code.

The codes and the exponent of each currency are ISO 4217's own (list one, as the
`iso4217` package ships it), not CLDR's display digits: Babel 2.19 (CLDR 48) shows HUF,
IDR and COP with no decimals, and a stored amount must not change its meaning when a
formatting library is upgraded. No float is ever involved: decimal strings are parsed
with `Decimal` and refused when they carry more digits than the currency has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, DecimalException, InvalidOperation
from functools import lru_cache

from iso4217 import Currency

# ASCII digits only: `\d` alone also matches fullwidth and other scripts' digits.
_DECIMAL_PATTERN = re.compile(r"^-?\d+(\.\d+)?$", re.ASCII)

# What an amount column (PostgreSQL bigint) holds. A gateway amount beyond it cannot be one of
# ours, and an integer of thousands of digits cannot even be printed (Python refuses to turn
# one of more than 4,300 digits into text), so parsing refuses it.
MAX_AMOUNT_MINOR = 2**63 - 1

# ISO 4217 lists precious metals, units of account and test codes too; no buyer pays in
# them.
_NOT_TENDER = frozenset(
    {"XAU", "XAG", "XPT", "XPD", "XDR", "XTS", "XXX", "XBA", "XBB", "XBC", "XBD", "XSU", "XUA"}
)


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


class CurrencyMismatch(MoneyError):
    """Arithmetic or comparison between two different currencies."""


@lru_cache(maxsize=1)
def _exponents() -> dict[str, int]:
    """ISO 4217 codes in current use with a minor unit, and its number of digits."""
    return {
        c.code: int(c.exponent)
        for c in Currency
        if c.exponent is not None and c.code not in _NOT_TENDER
    }


@lru_cache(maxsize=1)
def known_currencies() -> frozenset[str]:
    """ISO 4217 codes knowpay accepts: those in current use with a minor unit."""
    return frozenset(_exponents())


def currency_exponent(currency: str) -> int:
    """How many decimal digits the currency's minor unit has (CNY 2, JPY 0, BHD 3)."""
    return _exponents()[normalize_currency(currency)]


def normalize_currency(currency: str) -> str:
    """Upper-case and check an ISO 4217 code; raise MoneyError if unknown."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if code not in known_currencies():
        raise MoneyError(f"unknown currency: {currency!r}")
    return code


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: `amount_minor` units of the currency's minor unit."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise MoneyError("amount_minor must be an int")
        code = normalize_currency(self.currency)
        if code != self.currency:
            object.__setattr__(self, "currency", code)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a gateway decimal string ("12.30", "0.01", JPY "1200") exactly."""
        exponent = currency_exponent(currency)
        if not isinstance(text, str) or not _DECIMAL_PATTERN.match(text.strip()):
            raise MoneyError(f"not a decimal amount: {text!r}")
        try:
            value = Decimal(text.strip())
        except InvalidOperation as exc:  # pragma: no cover - guarded by the pattern
            raise MoneyError(f"not a decimal amount: {text!r}") from exc
        try:
            scaled = value.scaleb(exponent)
        except DecimalException as exc:  # a million digits pass the pattern, then overflow
            raise MoneyError(f"amount out of range: {text[:40]!r}…") from exc
        if abs(scaled) > MAX_AMOUNT_MINOR:
            raise MoneyError(f"amount out of range: {text[:40]!r}…")
        if scaled != scaled.to_integral_value():
            raise MoneyError(f"{text!r} has more than {exponent} decimals for {currency}")
        return cls(int(scaled), currency)

    def to_decimal_string(self) -> str:
        """The amount as a decimal string with exactly the currency's digits ("12.30")."""
        exponent = currency_exponent(self.currency)
        sign = "-" if self.amount_minor < 0 else ""
        units = abs(self.amount_minor)
        if exponent == 0:
            return f"{sign}{units}"
        major, minor = divmod(units, 10**exponent)
        return f"{sign}{major}.{minor:0{exponent}d}"

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("Money can only be combined with Money")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be mixed")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError("Money can only be multiplied by an int")
        return Money(self.amount_minor * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor < other.amount_minor

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor <= other.amount_minor

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor > other.amount_minor

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor >= other.amount_minor

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split into parts proportional to `weights`, losing no minor unit (largest remainder)."""
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise MoneyError("weights must be non-negative and not all zero")
        total = sum(weights)
        sign = -1 if self.amount_minor < 0 else 1
        units = abs(self.amount_minor)
        shares = [units * w // total for w in weights]
        remainders = sorted(
            range(len(weights)), key=lambda i: (units * weights[i]) % total, reverse=True
        )
        for index in remainders[: units - sum(shares)]:
            shares[index] += 1
        return [Money(sign * share, self.currency) for share in shares]

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"
