"""Where `/return/{id}` may send the payer's browser: an app's key names any return_url, a
buyer only the platform's own origins (knowpay's address, the CORS origins and
KNOWPAY_RETURN_URL_ORIGINS), so knowpay's address never serves as an open redirect."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select

from knowpay.kit.config import Settings
from knowpay.kit.db import Database
from knowpay.kit.urls import url_origin
from knowpay.payments.models import Payment
from tests.builders import Builders, Shop


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "cors_origins": ["https://m.shop.example"],
            "return_url_origins": ["https://www.shop.example"],
        }
    )


@pytest.fixture
def shop(build: Builders) -> Shop:
    return Shop(build)


def _pay_as_buyer(shop: Shop, order_id: str, return_url: str) -> tuple[int, dict[str, Any]]:
    response = shop.client.post(
        f"/v1/orders/{order_id}/payments",
        json={"channel": "test", "return_url": return_url},
        headers=shop.buyer.headers,
    )
    return response.status_code, response.json()


def _payments_of(database: Database, order_id: str) -> int:
    with database.session_scope() as session:
        count = session.scalar(
            select(func.count()).select_from(Payment).where(Payment.order_id == order_id)
        )
    return int(count or 0)


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example/phish",
        "https://www.shop.example@evil.example/",
        "https://evil.example@www.shop.example/",  # user info is refused, wherever it leads
        "https://[www.shop.example/",
        "https://[127.0.0.1]/",
        "https://www.shop.example\\@evil.example/",
        "https://www.shop.example.evil.example/",
        "http://www.shop.example/",  # another scheme is another origin
        "https://www.shop.example:8443/",
    ],
)
def test_a_buyer_cannot_send_the_browser_off_the_platform_and_nothing_is_written(
    shop: Shop, database: Database, return_url: str
) -> None:
    order = shop.order()
    status, problem = _pay_as_buyer(shop, order["id"], return_url)

    assert status == 422, problem
    assert problem["code"] == "return_url_not_allowed"
    assert [error["field"] for error in problem["errors"]] == ["return_url"]
    assert _payments_of(database, order["id"]) == 0


@pytest.mark.parametrize(
    "return_url",
    [
        "http://testserver/pay/done",  # knowpay's own address
        "https://www.shop.example/orders/1?paid=1",  # KNOWPAY_RETURN_URL_ORIGINS
        "https://WWW.Shop.Example:443/orders/1",  # the same origin, written otherwise
        "https://m.shop.example/orders/1",  # a CORS origin: the platform's own pages
    ],
)
def test_a_buyer_may_return_to_the_platforms_own_pages(
    shop: Shop, client: TestClient, return_url: str
) -> None:
    order = shop.order()
    status, payment = _pay_as_buyer(shop, order["id"], return_url)
    assert status == 201, payment

    back = client.get(f"/return/{payment['id']}", follow_redirects=False)
    assert back.status_code == 303
    assert back.headers["location"] == return_url


def test_an_apps_key_may_name_any_return_url(shop: Shop, client: TestClient) -> None:
    payment = shop.pay(shop.order(), return_url="https://partner.example/back")

    back = client.get(f"/return/{payment['id']}", follow_redirects=False)
    assert back.headers["location"] == "https://partner.example/back"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Shop.Example/a?b=c", "https://shop.example"),
        ("http://shop.example:80/", "http://shop.example"),
        ("http://shop.example:8080/", "http://shop.example:8080"),
        ("https://[2001:db8::1]:443/x", "https://[2001:db8::1]"),
        ("https://user@shop.example/", None),
        ("https://shop.example:99999/", None),
        ("javascript:alert(1)", None),
        ("https:///nohost", None),
        ("https://[x", None),
        ("https://a]b/", None),
        ("https://[evil.example]/", None),
    ],
)
def test_an_origin_is_read_as_a_browser_reads_it(url: str, origin: str | None) -> None:
    assert url_origin(url) == origin


@pytest.mark.parametrize(
    "origin", ["https://[shop.example", "https://a]b", "https://shop.example:99999", "ftp://x"]
)
def test_a_configured_origin_a_browser_could_not_read_is_refused_at_start(
    settings: Settings, origin: str
) -> None:
    for field in ("return_url_origins", "cors_origins"):
        with pytest.raises(ValidationError, match="an origin is scheme://host"):
            Settings.model_validate({**settings.model_dump(), field: [origin]})
