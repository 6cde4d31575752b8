"""The trade bill in WeChat Pay's text format: backtick-prefixed values, yuan, Beijing time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from knowpay.channels.errors import ProtocolError
from knowpay.channels.wechatpay.bill import parse_trade_bill
from knowpay.kit.money import Money

HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
PAID = (
    "`2026-01-01 20:00:05,`wxd678efh567hg6787,`1900000109,`0,`,`4200000000202601010000000001,"
    "`pay_01jd3k0000000000000000000a,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,"
    "`99.00,`0.00,`0,`0,`0.00,`0.00,`,`,`Python 数据分析 30 讲,`,`0.59400,`0.60%,`99.00,`0.00,`"
)
REFUNDED = (
    "`2026-01-01 23:10:00,`wxd678efh567hg6787,`1900000109,`0,`,`4200000000202601010000000001,"
    "`pay_01jd3k0000000000000000000a,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`REFUND,`OTHERS,`CNY,"
    "`99.00,`0.00,`50000000382019052709732678859,`re_01jd3k0000000000000000000b,`30.00,`0.00,"
    "`ORIGINAL,`SUCCESS,`Python 数据分析 30 讲,`,`-0.18000,`0.60%,`0.00,`30.00,`"
)
SUMMARY_HEADER = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def _bill(*rows: str, count: int | None = None) -> str:
    summary = f"`{len(rows) if count is None else count},`99.00,`30.00,`0.00,`0.41400,`99.00,`30.00"
    return "\ufeff" + "\r\n".join([HEADER, *rows, SUMMARY_HEADER, summary]) + "\r\n"


def test_payments_and_refunds_come_out_as_exact_money_in_utc() -> None:
    bill = parse_trade_bill(_bill(PAID, REFUNDED), date(2026, 1, 1))
    payment, refund = bill.lines
    assert (payment.kind, payment.amount) == ("payment", Money(9900, "CNY"))
    assert payment.out_trade_no == "pay_01jd3k0000000000000000000a"
    assert payment.gateway_trade_no == "4200000000202601010000000001"
    assert payment.occurred_at == datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert (refund.kind, refund.amount) == ("refund", Money(3000, "CNY"))


def test_an_empty_file_is_an_empty_bill() -> None:
    assert parse_trade_bill("", date(2026, 1, 1)).lines == []


def test_a_summary_that_disagrees_with_the_rows_is_refused() -> None:
    with pytest.raises(ProtocolError, match="summary"):
        parse_trade_bill(_bill(PAID, count=2), date(2026, 1, 1))


def test_an_amount_with_more_than_two_decimals_is_refused() -> None:
    with pytest.raises(ProtocolError, match="订单金额"):
        parse_trade_bill(_bill(PAID.replace("`99.00,`0.00,`", "`99.001,`0.00,`")), date(2026, 1, 1))


def test_a_row_cut_short_is_a_protocol_error() -> None:
    """Found by a review: a short row was a KeyError, not the adapter's refusal."""
    with pytest.raises(ProtocolError, match="columns"):
        parse_trade_bill(_bill(PAID.split(",`SUCCESS")[0]), date(2026, 1, 1))
