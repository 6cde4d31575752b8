"""Languages of the pages: Babel message catalogs compiled in memory at start-up.

The catalogs are `translations/<locale>/LC_MESSAGES/messages.po`; they are read with
`read_po` and compiled with `write_mo` into `babel.support.Translations` the first time a
page needs them, so there is no build step. A page's locale is, in this order: `?lang=` on
the request (a one-off choice), the logged-in account's `locale`, the `knowpay_lang` cookie
(set by the language switcher), the browser's Accept-Language, and zh_CN.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from babel import Locale
from babel.core import negotiate_locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.requests import Request

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
LANG_COOKIE = "knowpay_lang"
LANG_PARAM = "lang"
TRANSLATIONS_DIR = Path(__file__).parent / "translations"

_ALIASES = {"zh": "zh_CN", "zh_hans": "zh_CN", "zh_hans_cn": "zh_CN", "en_us": "en", "en_gb": "en"}


class Gettext(Protocol):
    """`_("Hello, %(name)s", name=...)`: the translation, with named values filled in."""

    def __call__(self, message: str, /, **values: Any) -> str: ...


def normalize_locale(value: str | None) -> str | None:
    """One of LOCALES for `zh-CN`, `zh_cn`, `zh`, `en-US`, …; None when not supported."""
    if not value:
        return None
    key = value.strip().replace("-", "_").lower()
    for supported in LOCALES:
        if key == supported.lower():
            return supported
    if key in _ALIASES:
        return _ALIASES[key]
    language = key.split("_", 1)[0]
    return {"zh": "zh_CN", "en": "en"}.get(language)


def catalog_path(locale: str, domain: str = "messages") -> Path:
    return TRANSLATIONS_DIR / locale / "LC_MESSAGES" / f"{domain}.po"


def catalog_files(locale: str) -> list[Path]:
    """`messages.po` first, then any other catalog beside it (e.g. the console's
    `console.po`), so each part of the site can keep its own file."""
    folder = TRANSLATIONS_DIR / locale / "LC_MESSAGES"
    main = catalog_path(locale)
    others = sorted(p for p in folder.glob("*.po") if p != main)
    return [main, *others] if main.is_file() else others


def read_catalog(locale: str) -> Catalog:
    """The message catalog of a locale as Babel reads it, all its files merged (tests
    compare pages against it)."""
    merged = Catalog(locale=locale, domain="messages")
    for path in catalog_files(locale):
        with path.open("rb") as source:
            part: Catalog = read_po(source, locale=locale)
        for message in part:
            if message.id and message.id not in merged:
                merged[message.id] = message
    return merged


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> Translations:
    """The compiled translations of a supported locale (compiled once per process)."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(locale))
    buffer.seek(0)
    return Translations(fp=buffer, domain="messages")


def make_gettext(locale: str) -> Gettext:
    """A `_()` for Python code: translate, then fill `%(name)s` placeholders."""
    compiled = translations(locale)

    def gettext(message: str, /, **values: Any) -> str:
        text: str = compiled.ugettext(message)
        return text % values if values else text

    return gettext


_ACCOUNT_LOCALE = "knowpay_account_locale"


def remember_account_locale(request: Request, locale: str | None) -> None:
    """Called by the session layer once it knows who is logged in."""
    setattr(request.state, _ACCOUNT_LOCALE, normalize_locale(locale))


def locale_for(request: Request) -> str:
    """The locale of the page being rendered (see the module for the order)."""
    explicit = normalize_locale(request.query_params.get(LANG_PARAM))
    if explicit:
        return explicit
    account: str | None = getattr(request.state, _ACCOUNT_LOCALE, None)
    if account:
        return account
    chosen = normalize_locale(request.cookies.get(LANG_COOKIE))
    if chosen:
        return chosen
    return negotiated(request.headers.get("accept-language", ""))


def negotiated(accept_language: str) -> str:
    """The best supported locale for an Accept-Language header (q-values respected)."""
    preferred: list[tuple[float, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        if not tag or tag == "*":
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            preferred.append((-quality + position * 1e-6, tag.strip().replace("-", "_")))
    ordered = [tag for _, tag in sorted(preferred)]
    found = negotiate_locale(ordered, list(LOCALES), sep="_", aliases={"zh": "zh_CN"})
    if found is None:  # `en-US` against `en`: fall back to the language alone
        found = negotiate_locale(
            [tag.split("_")[0] for tag in ordered], list(LOCALES), sep="_", aliases={"zh": "zh_CN"}
        )
    return normalize_locale(found) or DEFAULT_LOCALE


def gettext_for(request: Request) -> Gettext:
    """`_()` in the language of this request's page."""
    return make_gettext(locale_for(request))


def babel_locale(locale: str) -> Locale:
    return Locale.parse(locale)


current_locale: ContextVar[str] = ContextVar("knowpay_web_locale", default=DEFAULT_LOCALE)
"""The locale of the template being rendered (templates' `_()` and filters read it)."""


def current_gettext() -> Callable[[str], str]:
    compiled = translations(current_locale.get())

    def gettext(message: str) -> str:
        text: str = compiled.ugettext(message)
        return text

    return gettext
