"""The Alipay simulator the channel is tested against: it refuses what Alipay refuses, the
way Alipay refuses it, and retries notifications on Alipay's schedule."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from knowpay.channels.alipay import signing
from knowpay.channels.alipay.client import AlipayClient
from knowpay.kit.clock import FrozenClock
from knowpay.kit.config import AlipaySettings
from knowpay.sandbox.alipay import create_app
from knowpay.sandbox.alipay.notifier import RETRY_DELAYS_S, Notifier
from knowpay.sandbox.app import SandboxConfig
from tests.channels.alipay.conftest import KeyPair
from tests.live import serve_in_thread

APP_ID = "2021000000000007"


@pytest.fixture
def simulator(app_key: KeyPair, alipay_key: KeyPair) -> Iterator[TestClient]:
    config = SandboxConfig(
        public_url="http://sandbox.test",
        gateways={
            "alipay": {
                "app_id": APP_ID,
                "merchant_public_key": app_key.public_pem,
                "gateway_private_key": alipay_key.private_pem,
            }
        },
    )
    with TestClient(create_app(config), base_url="http://sandbox.test") as client:
        yield client


def _signed(
    app_key: KeyPair, alipay_key: KeyPair, method: str, biz: dict[str, str]
) -> dict[str, str]:
    settings = AlipaySettings(
        app_id=APP_ID, private_key=app_key.private_pem, alipay_public_key=alipay_key.public_pem
    )
    client = AlipayClient(settings, FrozenClock(datetime.now(UTC)))
    return client.signed_params(method, biz)


def _member(body: str, key: str) -> dict[str, str]:
    member: dict[str, str] = json.loads(body)[key]
    return member


def test_a_bad_signature_is_refused_with_40002_invalid_signature_signed(
    simulator: TestClient, app_key: KeyPair, alipay_key: KeyPair
) -> None:
    params = _signed(app_key, alipay_key, "alipay.trade.query", {"out_trade_no": "pay_1"})
    params["biz_content"] = '{"out_trade_no":"pay_2"}'  # changed after signing
    body = simulator.post("/gateway.do", data=params).text
    refusal = _member(body, "alipay_trade_query_response")
    assert (refusal["code"], refusal["msg"], refusal["sub_code"]) == (
        "40002",
        "Invalid Arguments",
        "isv.invalid-signature",
    )
    assert "app_id=2021000000000007&amp;biz_content=" in refusal["sub_msg"]
    split = signing.split_response(body, "alipay.trade.query")
    assert split.sign is not None
    assert signing.verify(split.text, split.sign, alipay_key.public)


def test_requests_the_gateway_cannot_attribute_are_refused_unsigned(
    simulator: TestClient, app_key: KeyPair, alipay_key: KeyPair
) -> None:
    no_method = json.loads(simulator.post("/gateway.do", data={"app_id": APP_ID}).text)
    assert no_method == {
        "error_response": {
            "code": "40001",
            "msg": "Missing Required Arguments",
            "sub_code": "isv.missing-method",
            "sub_msg": "缺少方法名参数",
        }
    }
    params = _signed(app_key, alipay_key, "alipay.trade.query", {"out_trade_no": "pay_1"})
    stranger = json.loads(simulator.post("/gateway.do", data={**params, "app_id": "2021"}).text)
    assert "sign" not in stranger
    assert stranger["alipay_trade_query_response"]["sub_code"] == "isv.invalid-app-id"


def test_a_precreated_trade_exists_only_once_scanned(
    simulator: TestClient, app_key: KeyPair, alipay_key: KeyPair
) -> None:
    biz = {"out_trade_no": "pay_9", "total_amount": "0.01", "subject": "x"}
    created = simulator.post(
        "/gateway.do", data=_signed(app_key, alipay_key, "alipay.trade.precreate", biz)
    )
    qr_code = _member(created.text, "alipay_trade_precreate_response")["qr_code"]
    query = _signed(app_key, alipay_key, "alipay.trade.query", {"out_trade_no": "pay_9"})
    unknown = _member(simulator.post("/gateway.do", data=query).text, "alipay_trade_query_response")
    assert unknown["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    assert simulator.get(urlsplit(qr_code).path.removeprefix("/alipay")).status_code == 200
    waiting = _member(simulator.post("/gateway.do", data=query).text, "alipay_trade_query_response")
    assert waiting["trade_status"] == "WAIT_BUYER_PAY"


def test_a_trade_past_its_time_expire_cannot_be_paid(
    simulator: TestClient, app_key: KeyPair, alipay_key: KeyPair
) -> None:
    expired = (datetime.now(UTC) + timedelta(hours=8) - timedelta(minutes=1)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    biz = {"out_trade_no": "pay_8", "total_amount": "1.00", "subject": "x", "time_expire": expired}
    simulator.post("/gateway.do", data=_signed(app_key, alipay_key, "alipay.trade.precreate", biz))
    paid = simulator.post("/_pay", json={"out_trade_no": "pay_8"})
    assert paid.status_code == 409
    assert simulator.get("/_trades/pay_8").json()["status"] == "TRADE_CLOSED"


def test_notifications_are_retried_on_alipays_schedule_until_success() -> None:
    arrivals: list[float] = []
    lock = threading.Lock()
    receiver = FastAPI()

    @receiver.post("/notify", response_class=PlainTextResponse)
    def notify() -> str:
        with lock:
            arrivals.append(time.monotonic())
            return "success" if len(arrivals) == 8 else "fail"

    @receiver.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    scale = 0.00002  # the 24.5 hours of retries in about 1.8 s
    notifier = Notifier(scale)
    with serve_in_thread(receiver) as url:
        delivery = notifier.submit(f"{url}/notify", {"notify_id": "n1", "out_trade_no": "p"})
        deadline = time.monotonic() + 20
        while not delivery.finished and time.monotonic() < deadline:
            time.sleep(0.02)
    assert delivery.delivered
    assert len(delivery.attempts) == len(arrivals) == len(RETRY_DELAYS_S) + 1 == 8
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    for gap, delay_s in zip(gaps, RETRY_DELAYS_S, strict=True):
        assert gap >= delay_s * scale * 0.95  # never early; late only by the machine's pace
    assert delivery.attempts[-1]["answers"] == [{"status_code": 200, "body": "success"}]
    # Each try keeps how long the merchant took to answer (the benchmark's notify latency).
    assert all(len(a["answer_ms"]) == 1 and a["answer_ms"][0] > 0 for a in delivery.attempts)
