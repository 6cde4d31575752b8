"""Amounts as Stripe writes them (https://docs.stripe.com/currencies): integers in the
currency's smallest unit as Stripe counts it. Zero-decimal currencies as whole units; BHD,
JOD, KWD, OMR, TND in thousandths ending in 0; ISK and UGX whole units written with two
decimals (multiples of 100); everything else, HUF and TWD included, with two decimals."""

from __future__ import annotations

ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf",
     "xof", "xpf"}
)  # fmt: skip
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
WHOLE_UNITS_TWO_DECIMALS = frozenset({"isk", "ugx"})
SUPPORTED = ZERO_DECIMAL | THREE_DECIMAL | WHOLE_UNITS_TWO_DECIMALS | frozenset(
    {"usd", "eur", "gbp", "hkd", "sgd", "aud", "cad", "cny", "chf", "nzd", "dkk", "nok", "sek",
     "pln", "czk", "huf", "twd", "ron", "bgn", "aed", "inr", "mxn", "brl", "myr", "thb", "idr",
     "php", "ils", "zar", "try", "sar", "qar", "egp", "ngn", "kes", "pkr", "lkr", "cop", "pen",
     "ars", "uyu", "mop"}
)  # fmt: skip
"""The presentment currencies this simulated account may charge in."""
MAX_AMOUNT = 99_999_999
MINIMUM = {
    "usd": 50, "eur": 50, "gbp": 30, "jpy": 50, "hkd": 400, "sgd": 50, "aud": 50, "cad": 50,
    "chf": 50, "nzd": 50, "dkk": 250, "nok": 300, "sek": 300, "pln": 200, "czk": 1500,
    "huf": 17500, "ron": 200, "bgn": 100, "aed": 200, "inr": 50, "mxn": 1000, "brl": 50,
    "myr": 200, "thb": 1000,
}  # fmt: skip
"""Stripe's minimum charge amounts per settlement currency, in its units."""


def decimals(currency: str) -> int:
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def step(currency: str) -> int:
    """Stripe's amounts in this currency are multiples of this."""
    if currency in WHOLE_UNITS_TWO_DECIMALS:
        return 100
    if currency in THREE_DECIMAL:
        return 10
    return 1


def display(amount: int, currency: str) -> str:
    """`1234 usd` → `12.34 USD`, `500 jpy` → `500 JPY`."""
    places = decimals(currency)
    sign = "-" if amount < 0 else ""
    units = abs(amount)
    if places == 0:
        return f"{sign}{units} {currency.upper()}"
    major, minor = divmod(units, 10**places)
    return f"{sign}{major}.{minor:0{places}d} {currency.upper()}"


def fee(amount: int, currency: str) -> int:
    """A card fee for the balance transaction: 2.9% plus 30 cents (or its rough equivalent)."""
    fixed = 30 if decimals(currency) == 2 else (50 if decimals(currency) == 0 else 300)
    return (amount * 29 + 500) // 1000 + fixed * step(currency)
