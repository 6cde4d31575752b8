"""GET /forms/unionpay: the page that posts the signed front consume to UnionPay. Its fields
come from `f` unchanged and HTML-escaped; its target only from settings; a bad `f` is a 400
problem."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from knowpay.channels.unionpay import transformers as tf
from knowpay.gateway_notifications.forms import router
from knowpay.kit.config import load_settings
from knowpay.kit.errors import install_error_handlers
from tests.channels.unionpay import material

FRONT_URL = "https://gateway.test.95516.com/gateway/api/frontTransReq.do?a=1&b=2"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.state.settings = load_settings(unionpay=material.settings(front_url=FRONT_URL))
    install_error_handlers(app)
    app.include_router(router)
    with TestClient(app) as test_client:
        yield test_client


def test_the_page_auto_submits_the_fields_unchanged_to_unionpay(client: TestClient) -> None:
    fields = {
        "orderId": "payX01jd3k0000000000000000000a",
        "riskRateInfo": '{commodityName=课程 "<script>alert(1)</script>" & more}',
        "signature": "ab+c/d==",
    }
    page = client.get("/forms/unionpay", params={"f": tf.encode_form(fields)})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "<script>alert" not in page.text
    [action] = re.findall(r'<form id="unionpay" method="post" action="([^"]*)"', page.text)
    assert html.unescape(action) == FRONT_URL
    posted = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">',
                                      page.text)
    }  # fmt: skip
    assert posted == fields
    assert 'onload="document.forms[0].submit()"' in page.text
    assert "<noscript>" in page.text


@pytest.mark.parametrize("value", ["not base64!", tf.encode_form({}), "eyJhIjogMX0"])
def test_an_unreadable_form_is_a_400_problem(client: TestClient, value: str) -> None:
    response = client.get("/forms/unionpay", params={"f": value})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_form"


def test_a_missing_form_is_refused(client: TestClient) -> None:
    assert client.get("/forms/unionpay").status_code == 422
