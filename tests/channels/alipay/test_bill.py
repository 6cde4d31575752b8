"""Alipay's zipped GBK bill: read by column name, payments and refunds, GBK file names."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from knowpay.channels.alipay import bill
from knowpay.channels.errors import ProtocolError
from knowpay.kit.money import Money
from knowpay.sandbox.alipay import bills as simulated_bills
from knowpay.sandbox.alipay.book import BEIJING, Refund, Trade

DAY = date(2026, 1, 2)


def _trade() -> Trade:
    paid = datetime(2026, 1, 2, 9, 30, 0, tzinfo=BEIJING)
    trade = Trade(
        out_trade_no="pay_1",
        trade_no="2026010222001400000000000001",
        kind="qr",
        subject="Python 数据分析, 第 1 讲",
        total_amount=Decimal("99.00"),
        notify_url=None,
        return_url=None,
        created_at=paid,
        status="TRADE_SUCCESS",
        paid_at=paid,
    )
    refunded = datetime(2026, 1, 2, 23, 59, 59, tzinfo=BEIJING)
    trade.refunds["re_1"] = Refund("re_1", Decimal("9.90"), "部分退款", refunded)
    return trade


def test_the_simulators_bill_parses_into_payment_and_refund_lines() -> None:
    name, data = simulated_bills.build("2088000000000001", DAY, [_trade()], datetime.now(BEIJING))
    assert name == "20880000000000010156_20260102.csv.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        # GBK names without the UTF-8 flag, as Alipay writes them.
        assert all(not info.flag_bits & 0x800 for info in archive.infolist())
    parsed = bill.parse(data, DAY)
    assert parsed.bill_date == DAY
    payment, refund = parsed.lines
    assert (payment.kind, payment.out_trade_no, payment.amount) == (
        "payment",
        "pay_1",
        Money(9900, "CNY"),
    )
    assert payment.gateway_trade_no == "2026010222001400000000000001"
    assert payment.occurred_at == datetime(2026, 1, 2, 1, 30, tzinfo=UTC)
    assert (refund.kind, refund.amount) == ("refund", Money(990, "CNY"))


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text.encode("gbk"))
    return buffer.getvalue()


def test_columns_are_found_by_name_in_older_and_newer_layouts() -> None:
    text = (
        "#支付宝业务明细查询\r\n#账号：[20880000000000010156]\r\n"
        "#-----------------------------------------业务明细列表----------------------------------------\r\n"
        "商户订单号,支付宝交易号,业务类型,商品名称,创建时间,完成时间,订单金额（元）,花呗分期数\r\n"
        "pay_9\t,T9\t,交易,课,2026-01-02 10:00:00,2026-01-02 10:00:05,0.01,0\r\n"
        "pay_9\t,T9\t,其他,课,2026-01-02 10:00:00,2026-01-02 10:00:05,0.01,0\r\n"
        "#-----------------------------------------业务明细列表结束------------------------------------\r\n"
        "#交易合计：1笔\r\n"
    )  # fmt: skip
    data = _zip({"x_业务明细.csv": text, "x_业务明细(汇总).csv": "#汇总\r\n"})
    [line] = bill.parse(data, DAY).lines
    assert (line.out_trade_no, line.gateway_trade_no, line.amount) == (
        "pay_9",
        "T9",
        Money(1, "CNY"),
    )


SHORT_ROW = "商户订单号,支付宝交易号,业务类型,创建时间,完成时间,订单金额（元）\r\npay_1,T1,交易\r\n"


@pytest.mark.parametrize(
    "data",
    [
        b"not a zip",
        _zip({"x_业务明细(汇总).csv": "#only the summary\r\n"}),
        _zip({"x_业务明细.csv": "#header missing\r\n"}),
        _zip({"x_业务明细.csv": "商户订单号,业务类型\r\npay_1,交易\r\n"}),
        # Found by a review: a row cut short was an IndexError, not the adapter's refusal.
        _zip({"x_业务明细.csv": SHORT_ROW}),
    ],
)
def test_a_bill_that_is_not_alipays_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        bill.parse(data, DAY)
