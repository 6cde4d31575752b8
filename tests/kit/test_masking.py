"""Personal data masked in logs and in staff views (issue #8); no card number in a log."""

from __future__ import annotations

import logging

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from knowpay.auth.principals import Role
from knowpay.kit.masking import (
    MaskingFilter,
    install_log_masking,
    mask_account,
    mask_email,
    mask_phone,
    mask_text,
)
from tests.builders import Builders

PANS = ("4111111111111111", "6212345678901234567", "4111 1111 1111 1111", "5500-0000-0000-0004")


def test_masking_rules() -> None:
    assert mask_email("zhang.san@example.com") == "z***@example.com"
    assert mask_email("not-an-email") == "***"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_phone("02112345678") == "021****5678"
    assert mask_account("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o").endswith("eS6o")
    assert set(mask_account("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")[:-4]) == {"*"}
    assert mask_account("6212345678901234567") == "*" * 15 + "4567"
    assert mask_account("buyer@alipay.example") == "b***@alipay.example"
    assert mask_account("13812345678") == "138****5678"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("login li.lei@example.com failed", "login l***@example.com failed"),
        ("sms to 13812345678 sent", "sms to 138****5678 sent"),
        ("sms to +86 13812345678", "sms to +86 138****5678"),
        ("card=4111111111111111&cvv=1", "card=************1111&cvv=1"),
        ("card 4111 1111 1111 1111.", "card ************1111."),
        ("accNo=6212345678901234567", "accNo=***************4567"),
        # Found by an operations audit: the access log kept cashier links that open an order.
        (
            '"GET /pay/ord_1?t=1795839241.orr9NNOmXy&lang=en HTTP/1.1" 200',
            '"GET /pay/ord_1?t=***&lang=en HTTP/1.1" 200',
        ),
        ("/pay/ord_1/status?lang=en&t=17958.abc", "/pay/ord_1/status?lang=en&t=***"),
        ("Knowpay-Signature: t=1767268800,v1=ab", "Knowpay-Signature: t=1767268800,v1=ab"),
        # What is not personal stays readable: amounts, dates, ids, short numbers.
        ("9900 CNY at 2026-01-01 12:30:00", "9900 CNY at 2026-01-01 12:30:00"),
        (
            "pay_01J9Z3Q4W5E6R7T8Y9U0 req_0123456789abcdef",
            "pay_01J9Z3Q4W5E6R7T8Y9U0 req_0123456789abcdef",
        ),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_every_log_record_is_masked_whatever_logged_it(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library").info("payer %s paid with %s", "li.lei@example.com", PANS[0])
    logging.getLogger("knowpay.test").warning("raw body: %r", {"accNo": PANS[1]})
    try:
        raise ValueError(f"bad card {PANS[2]} for 13812345678")
    except ValueError:
        logging.getLogger("knowpay.test").exception("unexpected")
    for pan in PANS[:3]:
        assert pan not in caplog.text
    assert "li.lei@example.com" not in caplog.text
    assert "13812345678" not in caplog.text
    assert "l***@example.com" in caplog.text
    assert "************1111" in caplog.text
    assert "ValueError: bad card ************1111 for 138****5678" in caplog.text


def test_the_filter_masks_a_record_on_a_handler() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "card %s", (PANS[0],), None)
    assert MaskingFilter().filter(record) is True
    assert record.getMessage() == "card ************1111"


broken = APIRouter()


@broken.post("/test-broken")
def explode(body: dict[str, str]) -> None:
    raise RuntimeError(f"could not charge {body['card']}")


def test_a_card_number_in_a_request_or_a_notification_never_reaches_a_log(
    app: FastAPI, build: Builders, caplog: pytest.LogCaptureFixture
) -> None:
    app.include_router(broken)
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as client:
        shop = build.app()
        for pan in PANS:
            client.post(
                "/v1/orders",
                json={
                    "user_id": "usr_x",
                    "items": [],
                    "currency": "CNY",
                    "metadata": {"card": pan},
                },
                headers=shop.headers,
            )
            client.post("/v1/auth/token", json={"username": pan, "password": pan})
            client.post("/test-broken", json={"card": pan})
            for gateway in ("alipay", "wechatpay", "unionpay", "test"):
                client.post(f"/notify/{gateway}", content=f"accNo={pan}&sign=x".encode())
                client.post(f"/notify/{gateway}", json={"card_number": pan, "payer": pan})
    assert "could not charge" in caplog.text  # the failure was logged, its card number not
    for pan in PANS:
        assert pan not in caplog.text
        for record in caplog.records:
            assert pan not in record.getMessage()


def test_support_and_finance_see_buyers_masked_admins_and_the_app_in_full(
    client: TestClient, build: Builders
) -> None:
    app = build.app()
    buyer = build.buyer(app, email="li.lei@example.com", phone="+8613812345678")
    support = build.staff(Role.SUPPORT)
    finance = build.staff(Role.FINANCE)
    admin = build.staff(Role.ADMIN)

    def seen_by(headers: dict[str, str]) -> tuple[dict[str, object], dict[str, object]]:
        one = client.get(f"/v1/users/{buyer.id}", headers=headers)
        assert one.status_code == 200, one.text
        listed = client.get("/v1/users", headers=headers).json()["data"]
        [same] = [user for user in listed if user["id"] == buyer.id]
        return one.json(), same

    for staff in (support, finance):
        for view in seen_by(staff.headers):
            assert view["email"] == "l***@example.com"
            assert view["phone"] == "+86138****5678"
    for caller in (admin, app, buyer):
        view = client.get(f"/v1/users/{buyer.id}", headers=caller.headers).json()
        assert view["email"] == "li.lei@example.com"
        assert view["phone"] == "+8613812345678"
    for view in seen_by(admin.headers):
        assert view["email"] == "li.lei@example.com"
    # Staff see their own record in full.
    assert client.get("/v1/users/me", headers=support.headers).json()["email"] == support.email
