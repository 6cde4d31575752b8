"""Driving knowpay's pages as a browser does: cookies, the CSRF field, forms."""

from __future__ import annotations

import html
import re
from typing import Any, Protocol

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class HttpClient(Protocol):
    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


def csrf_of(page: str) -> str:
    found = CSRF_FIELD.search(page)
    assert found, "the page has no form with a CSRF token"
    return html.unescape(found.group(1))


def login(client: HttpClient, email: str, password: str, next_url: str = "") -> Any:
    """Open /login (which gives the visitor a session), then post the form."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": next_url,
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )


def visible_text(page: str) -> str:
    """The page's text as a person reads it (tags, scripts and styles removed)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def untranslated(page: str) -> list[str]:
    """Catalog msgids (whose Chinese differs) that show up in English on a zh_CN page."""
    from knowpay.web import i18n

    text = visible_text(page)
    found = []
    for message in i18n.read_catalog("zh_CN"):
        msgid = message.id
        if not msgid or not isinstance(msgid, str) or message.string == msgid:
            continue
        if msgid == "knowpay":  # the brand is also in data (e-mail domains, order numbers)
            continue
        probe = msgid.split("%(")[0].strip()
        if len(probe) >= 4 and probe in text:
            found.append(msgid)
    return found
