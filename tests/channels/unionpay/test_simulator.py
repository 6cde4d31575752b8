"""The UnionPay simulator on its own: what /_keys publishes, that its answers pass knowpay's
certificate checks with the published root and middle CA, that it refuses what UnionPay
refuses, and its back-notification schedule (5 sends, waits of 0, 1, 2, 4 minutes, scaled)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from knowpay.channels.unionpay import signing
from knowpay.channels.unionpay import transformers as tf
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app
from knowpay.sandbox.unionpay.notifier import RETRY_DELAYS_S
from tests.live import serve_in_thread

SCALE = 0.001  # a minute becomes 60 ms


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TestClient]:
    app = create_sandbox_app(SandboxConfig(public_url="http://testserver", time_scale=SCALE))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def keys(sandbox: TestClient) -> dict[str, str]:
    published: dict[str, str] = sandbox.get("/unionpay/_keys").json()
    return published


def _signed(keys: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """A request signed with the merchant key the simulator handed out."""
    key = signing.load_private_key(keys["merchant_private_key"])
    return signing.sign_params(fields, key, keys["merchant_cert_id"])


def _query(order_id: str, keys: dict[str, str]) -> dict[str, str]:
    return {
        "version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "txnType": "00",
        "txnSubType": "00", "bizType": "000201", "accessType": "0", "merId": keys["mer_id"],
        "orderId": order_id, "txnTime": "20260101200000",
    }  # fmt: skip


def test_keys_give_the_merchant_everything_it_needs(keys: dict[str, str]) -> None:
    assert keys["mer_id"] == "777290058110048"
    assert keys["expected_cert_cn"] == "中国银联股份有限公司"
    assert keys["front_url"] == "http://testserver/unionpay/gateway/api/frontTransReq.do"
    merchant = signing.load_certificate(keys["merchant_cert"])
    assert keys["merchant_cert_id"] == signing.cert_id(merchant)
    signing.load_private_key(keys["merchant_private_key"])
    assert signing.owner(signing.load_certificate(keys["signing_cert"])) == "中国银联股份有限公司"


def test_answers_verify_with_the_published_ca_and_read_as_unionpays(
    sandbox: TestClient, keys: dict[str, str]
) -> None:
    response = sandbox.post(
        "/unionpay/gateway/api/queryTrans.do", data=_signed(keys, _query("payX0123456", keys))
    )
    assert response.headers["content-type"].startswith("text/plain")
    answer = tf.parse_response(response.text)
    assert (answer["respCode"], answer["respMsg"]) == ("34", "查无此交易[2600000]")
    verifier = signing.CertificateVerifier(
        signing.load_certificate(keys["root_cert"]),
        signing.load_certificate(keys["middle_cert"]),
        keys["expected_cert_cn"],
    )
    verifier.verify(answer, datetime.now(UTC))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"txnAmt": "2"}, "11"),  # changed after signing
        ({"certId": "1"}, "11"),
        ({"version": "5.0.0"}, "10"),
        ({"signature": ""}, "13"),
    ],
)
def test_a_request_unionpay_would_refuse_is_refused(
    sandbox: TestClient, keys: dict[str, str], change: dict[str, str], code: str
) -> None:
    request = _signed(keys, {**_query("payX0123456", keys), "txnAmt": "1"})
    response = sandbox.post("/unionpay/gateway/api/queryTrans.do", data={**request, **change})
    assert tf.parse_response(response.text)["respCode"] == code


def test_a_refused_notification_is_sent_five_times_on_unionpays_schedule(
    sandbox: TestClient, keys: dict[str, str]
) -> None:
    received: list[tuple[float, dict[str, str]]] = []
    catcher = FastAPI()

    @catcher.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @catcher.post("/notify")
    async def notify(request: Request) -> Response:
        body = (await request.body()).decode("ascii")
        received.append((time.monotonic(), dict(parse_qsl(body))))
        return Response("no", status_code=500)

    with serve_in_thread(catcher) as url:
        fields = {
            **_query("payX0123456789", keys), "txnType": "01", "txnSubType": "01",
            "channelType": "07", "currencyCode": "156", "txnAmt": "9900",
            "backUrl": f"{url}/notify", "txnTime": "20260101200000",
        }  # fmt: skip
        page = sandbox.post("/unionpay/gateway/api/frontTransReq.do", data=_signed(keys, fields))
        assert "确认付款" in page.text
        paid = sandbox.post("/unionpay/_pay", json={"order_id": "payX0123456789"}).json()
        deadline = time.monotonic() + 10
        while len(received) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
    assert len(received) == 5
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(received)]
    for gap, wait in zip(gaps, RETRY_DELAYS_S, strict=True):
        assert gap >= wait * SCALE
    assert RETRY_DELAYS_S == (0, 60, 120, 240)
    notice = received[0][1]
    assert (notice["queryId"], notice["txnAmt"], notice["respCode"]) == (
        paid["query_id"],
        "9900",
        "00",
    )
    public_key = signing.load_certificate(notice["signPubKeyCert"]).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert signing.verify_signature(notice, public_key)
