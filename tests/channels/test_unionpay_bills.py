"""UnionPay's daily bill: the settlement file fetched by the file transfer (txnType 76), first
against the simulator over real HTTP (trades paid and refunded there, the zipped, deflated,
base64 file built from them, signed answers), then the request on the wire and the file's
reading against stand-ins made in the test."""

from __future__ import annotations

import base64
import io
import secrets
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest

from knowpay.channels.errors import ChannelDeclined, ProtocolError, SignatureInvalid
from knowpay.channels.types import ChannelStatus, CreatePaymentRequest, RefundRequest
from knowpay.channels.unionpay import bill, transformers
from knowpay.channels.unionpay.adapter import BILL_READY_AFTER, UnionPayChannel
from knowpay.channels.unionpay.client import UnionPayClient, file_transfer_url
from knowpay.kit.clock import FrozenClock, SystemClock
from knowpay.kit.config import UnionPaySettings
from knowpay.kit.money import Money
from knowpay.sandbox.app import SandboxConfig, create_sandbox_app
from knowpay.sandbox.unionpay.pki import new_key
from tests.channels.unionpay import material
from tests.live import free_port, serve_in_thread

MER_ID = "777290058110043"
BEIJING = transformers.BEIJING
FILE = "filedownload"
DEC31 = f"INN25123188ZM_{MER_ID}"
"""The general transaction detail file of 2025-12-31 (INN, yyMMdd, 88ZM_, merId)."""


@dataclass
class Simulator:
    keys: dict[str, str]
    http: httpx.Client

    def fault(self, kind: str, **spec: Any) -> None:
        made = self.http.post("/_faults", json={"kind": kind, **spec})
        assert made.status_code == 201, made.text


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    port = free_port()
    config = SandboxConfig(
        public_url=f"http://127.0.0.1:{port}",
        time_scale=0.0001,
        gateways={"unionpay": {"mer_id": MER_ID}},
    )
    with (
        serve_in_thread(create_sandbox_app(config), port=port) as url,
        httpx.Client(base_url=f"{url}/unionpay", trust_env=False, timeout=10) as http,
    ):
        yield Simulator(http.get("/_keys").json(), http)


@pytest.fixture
def sim(simulator: Simulator) -> Iterator[Simulator]:
    # Nobody listens at the notify URL: the notifications are not sent at all.
    simulator.fault("lost")
    yield simulator
    simulator.http.post("/_reset")


def settings_of(keys: dict[str, str], **changes: Any) -> UnionPaySettings:
    fields: dict[str, Any] = {
        "mer_id": keys["mer_id"],
        "sign_private_key": keys["merchant_private_key"],
        "sign_cert": keys["merchant_cert"],
        "root_cert": keys["root_cert"],
        "middle_cert": keys["middle_cert"],
        "expected_cert_cn": keys["expected_cert_cn"],
        "front_url": keys["front_url"],
        "back_url": keys["back_url"],
        "query_url": keys["query_url"],
        "timeout_s": 2.0,
        **changes,
    }
    return UnionPaySettings(**fields)


def channel_of(keys: dict[str, str], **changes: Any) -> UnionPayChannel:
    clock = SystemClock()
    client = UnionPayClient(settings_of(keys, **changes), clock)
    return UnionPayChannel(client, "http://knowpay.test/forms/unionpay", clock)


def new_id(prefix: str) -> str:
    """A knowpay id of now (its creation time is the txnTime), unique per call."""
    return material.knowpay_id(prefix, datetime.now(UTC), secrets.token_hex(8))


def paid_at_unionpay(sim: Simulator, channel: UnionPayChannel, amount: int) -> str:
    """A consume opened through knowpay's signed form and paid by the payer: its id."""
    payment_id = new_id("pay")
    created = channel.create_payment(
        CreatePaymentRequest(
            out_trade_no=payment_id,
            amount=Money(amount, "CNY"),
            subject="会员",
            notify_url="http://127.0.0.1:9/notify/unionpay",
            expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )
    )
    form = parse_qs(urlsplit(created.action.url or "").query)["f"][0]
    card = httpx.post(sim.keys["front_url"], data=transformers.decode_form(form))
    assert "确认付款" in card.text, card.text
    payed = sim.http.post("/_pay", json={"order_id": transformers.order_id(payment_id)})
    assert payed.status_code == 200, payed.text
    return payment_id


def refunded(channel: UnionPayChannel, payment_id: str, amount: int, total: int) -> str:
    refund_id = new_id("ref")
    result = channel.refund(
        RefundRequest(
            out_trade_no=payment_id,
            out_refund_no=refund_id,
            amount=Money(amount, "CNY"),
            total=Money(total, "CNY"),
            reason="other",
            notify_url="http://127.0.0.1:9/notify/unionpay",
        )
    )
    assert result.status is ChannelStatus.PENDING  # accepted: done at once by the simulator
    return refund_id


def today() -> date:
    return datetime.now(BEIJING).date()


# Against the simulator, over HTTP ----------------------------------------------------------


def test_the_days_bill_lists_each_payment_and_refund_as_knowpay_names_them(
    sim: Simulator,
) -> None:
    channel = channel_of(sim.keys)
    kept = paid_at_unionpay(sim, channel, 9900)
    partly = paid_at_unionpay(sim, channel, 12345)
    refunded(channel, partly, 1500, 12345)
    refunded(channel, partly, 45, 12345)
    query_ids = {
        p: sim.http.get(f"/_trades/{transformers.order_id(p)}").json()["query_id"]
        for p in (kept, partly)
    }
    began = datetime.now(UTC)

    fetched = channel.fetch_bill(today())

    ours = [
        (line.kind, line.out_trade_no, line.gateway_trade_no, line.amount)
        for line in fetched.lines
        if line.out_trade_no in (kept, partly)
    ]
    assert ours == [
        ("payment", kept, query_ids[kept], Money(9900, "CNY")),
        ("payment", partly, query_ids[partly], Money(12345, "CNY")),
        # A refund names its payment and the consume's queryId, with its own amount in fen.
        ("refund", partly, query_ids[partly], Money(1500, "CNY")),
        ("refund", partly, query_ids[partly], Money(45, "CNY")),
    ]
    assert fetched.bill_date == today()
    for line in fetched.lines:
        assert abs(line.occurred_at - began) < timedelta(minutes=5)
        assert line.occurred_at.tzinfo is not None


def test_a_day_without_a_file_is_an_empty_bill(sim: Simulator) -> None:
    channel = channel_of(sim.keys)
    paid_at_unionpay(sim, channel, 100)  # today has a file; ten days ago has none (98)
    assert channel.fetch_bill(today() - timedelta(days=10)).lines == []


@pytest.mark.parametrize("kind", ["forged_signature", "untrusted_cert", "wrong_cn"])
def test_an_answer_whose_signature_fails_is_refused(sim: Simulator, kind: str) -> None:
    channel = channel_of(sim.keys)
    paid_at_unionpay(sim, channel, 100)
    sim.fault(kind, target="response", endpoints=[FILE], times=1)
    with pytest.raises(SignatureInvalid):
        channel.fetch_bill(today())
    assert channel.fetch_bill(today()).lines  # the next, honest answer is read


def _deflated(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data)).decode("ascii")


def _zip(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def _malformed() -> dict[str, str]:
    day = today()
    zm = f"INN{day:%y%m%d}88ZM_{MER_ID}"
    return {
        "not base64": "这不是文件",
        "not deflated": base64.b64encode(b"PK\x03\x04 raw zip bytes").decode("ascii"),
        "cut short": _deflated(b"a longer file than the content holds")[:12],
        "not a zip": _deflated(b"not a zip file"),
        "no detail file": _deflated(_zip(f"INN{day:%y%m%d}88ZME_{MER_ID}", b"")),
        "another merchant's": _deflated(_zip(f"INN{day:%y%m%d}88ZM_777290058110044", b"")),
        "a line cut short": _deflated(_zip(zm, b"S22 00010000 00010000 123456\r\n")),
        "an amount that is none": _deflated(_zip(zm, _line(amount="12.3") + b"\r\n")),
        "an orderId that is none": _deflated(_zip(zm, _line(order_id="pay_x!") + b"\r\n")),
    }


MALFORMED = (
    *("not base64", "not deflated", "cut short", "not a zip", "no detail file"),
    *("another merchant's", "a line cut short", "an amount that is none"),
    "an orderId that is none",
)


@pytest.mark.parametrize("case", MALFORMED)
def test_a_signed_answer_whose_file_cannot_be_read_is_a_protocol_error(
    sim: Simulator, case: str
) -> None:
    channel = channel_of(sim.keys)
    paid_at_unionpay(sim, channel, 100)
    content = _malformed()[case]
    sim.fault(
        "tampered_fields",
        target="response",
        endpoints=[FILE],
        fields={"fileContent": content},
        times=1,
    )
    with pytest.raises(ProtocolError):
        channel.fetch_bill(today())


def test_a_request_signed_with_another_key_is_refused_by_the_simulator(sim: Simulator) -> None:
    other = material.private_pem(new_key())
    with pytest.raises(ChannelDeclined) as refused:
        channel_of(sim.keys, sign_private_key=other).fetch_bill(today())
    assert refused.value.code == "11"  # 验证签名失败


def test_the_simulator_publishes_its_file_url_and_the_adapter_finds_it(sim: Simulator) -> None:
    assert sim.keys["file_url"].endswith("/unionpay/")
    assert file_transfer_url(sim.keys["query_url"]) == sim.keys["file_url"]


# The request on the wire and the file's reading, against stand-ins --------------------------


def test_the_file_transfer_request_is_the_sdks_and_goes_to_unionpays_file_host() -> None:
    sent: list[tuple[str, dict[str, str]]] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode("ascii")))
        sent.append((str(request.url), form))
        answer = material.from_unionpay(
            {
                **{k: form[k] for k in ("version", "encoding", "signMethod", "merId")},
                **{k: form[k] for k in ("txnType", "txnSubType", "bizType", "accessType")},
                **{k: form[k] for k in ("txnTime", "settleDate", "fileType")},
                "respCode": "98",
                "respMsg": "文件不存在",
            }
        )
        return httpx.Response(200, text="&".join(f"{k}={v}" for k, v in answer.items()))

    clock = FrozenClock(material.NOW)
    client = UnionPayClient(material.settings(), clock, transport=httpx.MockTransport(gateway))
    channel = UnionPayChannel(client, "https://knowpay.test/forms/unionpay", clock)

    assert channel.fetch_bill(date(2025, 12, 31)).lines == []

    [(url, form)] = sent
    assert url == "https://filedownload.test.95516.com/"
    expected = {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "76",
        "txnSubType": "01",
        "bizType": "000000",
        "accessType": "0",
        "channelType": "07",
        "merId": material.MER_ID,
        "txnTime": "20260101200000",  # NOW, 12:00 UTC, in Beijing time
        "settleDate": "1231",
        "fileType": "00",
        "certId": "68759585097",
    }
    assert {k: form[k] for k in expected} == expected
    assert form["signature"] == material.spec_signature(form, material.merchant().key)


def test_unionpay_file_hosts_stand_beside_its_gateway_hosts() -> None:
    prod = "https://gateway.95516.com/gateway/api/queryTrans.do"
    test = "https://gateway.test.95516.com/gateway/api/queryTrans.do"
    assert file_transfer_url(prod) == "https://filedownload.95516.com/"
    assert file_transfer_url(test) == "https://filedownload.test.95516.com/"
    with pytest.raises(ValueError, match="file-transfer URL"):
        file_transfer_url("https://proxy.example/query")


def test_the_bill_is_on_beijing_time_and_asked_for_the_next_morning() -> None:
    clock = FrozenClock(material.NOW)
    channel = UnionPayChannel(UnionPayClient(material.settings(), clock), "https://k/f", clock)
    assert channel.profile.has_bills
    assert channel.profile.bill_timezone.utcoffset(None) == timedelta(hours=8)
    assert channel.profile.bill_ready_after == BILL_READY_AFTER == timedelta(hours=10)


def _line(
    *,
    txn_type: str = "01",
    order_id: str = "payX01jd3k00000000000000000001",
    query_id: str = "512345678901234567890",
    orig_query_id: str = "",
    amount: str = "9900",
    trace_time: str = "1231235959",
    mer_id: str = MER_ID,
    reserved: str = "",
) -> bytes:
    """One line of a ZM file, written straight from the 42 field widths."""
    values = {
        1: "S22",
        5: trace_time,
        7: amount.rjust(12, "0"),
        10: query_id,
        12: order_id,
        20: txn_type,
        27: orig_query_id,
        28: mer_id,
        35: reserved,
    }
    cells = [
        values.get(index, "").encode("gbk").ljust(width)
        for index, width in enumerate(bill.WIDTHS, 1)
    ]
    return b" ".join(cells)


def test_refund_lines_name_their_payment_by_the_consume_or_the_merchants_own_field() -> None:
    consume = "512345678901234567890"
    earlier = "412345678901234567890"
    text = b"\r\n".join(
        [
            _line(),
            _line(txn_type="04", order_id="refX01aaaaaa", query_id="6" * 21, orig_query_id=consume,
                  amount="100"),
            # Its consume was on another day's file: named by 商户自定义域 (the reqReserved).
            _line(txn_type="04", order_id="refX02aaaaaa", query_id="7" * 21,
                  orig_query_id=earlier, amount="200", reserved="pay_01jd3k00000000000000000777"),
            # Neither: named by the refund's own number, for reconciliation to report.
            _line(txn_type="04", order_id="refX03aaaaaa", query_id="8" * 21,
                  orig_query_id=earlier, amount="300"),
            _line(txn_type="02", order_id="payX01jd3k00000000000000000002"),  # a preauth
            b"",
        ]
    )  # fmt: skip
    day = date(2025, 12, 31)
    read = bill.parse(_zip(DEC31, text), day, MER_ID)
    assert [(x.kind, x.out_trade_no, x.gateway_trade_no, x.amount.amount_minor)
            for x in read.lines] == [
        ("payment", "pay_01jd3k00000000000000000001", consume, 9900),
        ("refund", "pay_01jd3k00000000000000000001", consume, 100),
        ("refund", "pay_01jd3k00000000000000000777", earlier, 200),
        ("refund", "ref_03aaaaaa", earlier, 300),
    ]  # fmt: skip
    assert read.lines[0].occurred_at == datetime(2025, 12, 31, 15, 59, 59, tzinfo=UTC)


def test_a_time_without_a_year_is_read_in_the_year_nearest_the_bill_day() -> None:
    text = _line(trace_time="0101000001")  # just after midnight: the next year's
    [line] = bill.parse(_zip(DEC31, text), date(2025, 12, 31),
                        MER_ID).lines  # fmt: skip
    assert line.occurred_at == datetime(2025, 12, 31, 16, 0, 1, tzinfo=UTC)


def test_a_line_of_another_merchant_is_refused() -> None:
    text = _line(mer_id="777290058110099")
    with pytest.raises(ProtocolError, match="merchant"):
        bill.parse(_zip(DEC31, text), date(2025, 12, 31), MER_ID)


def test_file_content_is_base64_of_a_zlib_stream() -> None:
    assert bill.decode_file_content(_deflated(b"PK zip")) == b"PK zip"
    with pytest.raises(ProtocolError, match="without fileContent"):
        bill.decode_file_content("")
