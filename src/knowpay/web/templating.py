"""One Jinja2 environment for every page: autoescaping, `_()` from the Babel catalogs,
money and date filters in the page's locale, and a `csrf_token()` for forms.

`render(request, "page.html", **context)` is the one way a page is answered: it picks the
locale, makes sure the visitor has a session (so every form is CSRF-checked), fills the
CSRF cookie, and marks the response `no-store` (pages carry personal data and tokens).
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, format_skeleton
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from knowpay.kit.config import Settings
from knowpay.kit.csrf import CSRF_COOKIE, CsrfTokens
from knowpay.kit.money import Money, currency_exponent
from knowpay.web import i18n
from knowpay.web.session import apply_session_cookie, logged_in, session_cookie_value

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

LANGUAGE_NAMES = {"zh_CN": "简体中文", "en": "English"}


def _gettext(message: str) -> str:
    return i18n.current_gettext()(message)


def _ngettext(singular: str, plural: str, count: int) -> str:
    text: str = i18n.translations(i18n.current_locale.get()).ungettext(singular, plural, count)
    return text


def format_money(amount_minor: int, currency: str, locale: str | None = None) -> str:
    """`¥99.00` / `US$14.99` for an integer count of minor units, in the page's locale,
    with every digit of the currency's ISO 4217 minor unit: CLDR shows some currencies
    (HUF, IDR, IQD, COP …) with fewer decimals than they are charged in, and a page must
    never show an amount rounded away from the one the buyer pays."""
    money = Money(amount_minor, currency)
    page_locale = Locale.parse(locale or i18n.current_locale.get())
    pattern = copy.copy(page_locale.currency_formats["standard"])
    digits = currency_exponent(money.currency)
    pattern.frac_prec = (digits, digits)
    return str(
        pattern.apply(
            Decimal(money.to_decimal_string()),
            page_locale,
            currency=money.currency,
            currency_digits=False,
        )
    )


def format_when(
    value: datetime | None,
    timezone: str = "Asia/Shanghai",
    fmt: str = "medium",
    locale: str | None = None,
) -> str:
    """A date and time in the page's locale (or `locale`), in the platform's time zone."""
    if value is None:
        return ""
    return str(
        format_datetime(
            value, fmt, tzinfo=ZoneInfo(timezone), locale=locale or i18n.current_locale.get()
        )
    )


def format_month(day: date, locale: str | None = None) -> str:
    """The month of `day` in the page's locale: `2026年1月`, `Jan 2026`."""
    return str(format_skeleton("yMMM", day, locale=locale or i18n.current_locale.get()))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "xml", "svg"], default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The callables read the locale of the page being rendered (a context variable), so one
    # environment serves every language and every thread.
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["money"] = lambda amount, currency: format_money(int(amount), str(currency))
    return env


environment = _environment()


def add_template_dir(path: Path) -> None:
    """Let another package (the staff console) add its own templates directory; its
    templates may extend `base.html`."""
    loader = environment.loader
    assert isinstance(loader, FileSystemLoader)
    if str(path) not in [str(p) for p in loader.searchpath]:
        loader.searchpath.append(str(path))


def csrf_token_for(request: Request) -> str:
    """The CSRF token for this page's forms: the visitor's current one when it is still
    valid for their session (so pages open in several tabs keep working), else a new one."""
    cached: str | None = getattr(request.state, "web_csrf_token", None)
    if cached:
        return cached
    tokens: CsrfTokens = request.app.state.csrf_tokens
    session = session_cookie_value(request)
    existing = request.cookies.get(CSRF_COOKIE, "")
    token = existing if existing and tokens.valid(existing, session) else tokens.issue(session)
    request.state.web_csrf_token = token
    return token


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page in the visitor's language; sets the session and CSRF cookies."""
    principal = logged_in(request)  # also picks up the account's locale
    locale = i18n.locale_for(request)
    settings: Settings = request.app.state.settings
    timezone = settings.limits.timezone
    token = csrf_token_for(request)
    values: dict[str, Any] = {
        "request": request,
        "locale": locale,
        "html_lang": locale.replace("_", "-"),
        "languages": LANGUAGE_NAMES,
        "principal": principal,
        "csrf_token": lambda: token,
        "money": format_money,
        "when": lambda value, fmt="medium": format_when(value, timezone, fmt),
        "month": format_month,
        "current_url": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    }
    reset = i18n.current_locale.set(locale)
    try:
        html = environment.get_template(template).render(values)
    finally:
        i18n.current_locale.reset(reset)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = locale.replace("_", "-")
    apply_session_cookie(request, response)
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=settings.public_url.startswith("https://"),
            path="/",
        )
    return response
