"""The trade bill (交易账单, bill_type ALL) in WeChat Pay's text format: a CSV whose values
start with a backtick, amounts in yuan, times in Beijing time, then a summary."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from knowpay.sandbox.wechatpay.store import BEIJING, Refund, Store, Trade

COLUMNS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_COLUMNS = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
FEE_RATE_PPM = 6000  # 0.60%


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def fee(fen: int) -> str:
    """The fee in yuan with five decimals, as the bill shows it."""
    micro_fen = fen * FEE_RATE_PPM  # fen * 1e-6, i.e. 1e-8 yuan units
    sign = "-" if micro_fen < 0 else ""
    units = round(abs(micro_fen) / 1000)  # 1e-5 yuan
    return f"{sign}{units // 100000}.{units % 100000:05d}"


def _line(values: list[str]) -> str:
    return ",".join("`" + value for value in values)


def _when(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _payment_row(trade: Trade) -> list[str]:
    assert trade.success_time is not None
    assert trade.transaction_id is not None
    return [
        _when(trade.success_time),
        trade.appid,
        trade.mchid,
        "0",
        "",
        trade.transaction_id,
        trade.out_trade_no,
        trade.payer_openid or "",
        trade.trade_type,
        "SUCCESS",
        "OTHERS",
        trade.currency,
        yuan(trade.total),
        "0.00",
        "0",
        "0",
        "0.00",
        "0.00",
        "",
        "",
        trade.description,
        trade.attach or "",
        fee(trade.total),
        "0.60%",
        yuan(trade.total),
        "0.00",
        "",
    ]


def _refund_row(refund: Refund, trade: Trade) -> list[str]:
    assert refund.success_time is not None
    return [
        _when(refund.success_time),
        trade.appid,
        trade.mchid,
        "0",
        "",
        refund.transaction_id,
        refund.out_trade_no,
        trade.payer_openid or "",
        trade.trade_type,
        "REFUND",
        "OTHERS",
        trade.currency,
        yuan(trade.total),
        "0.00",
        refund.refund_id,
        refund.out_refund_no,
        yuan(refund.refund),
        "0.00",
        "ORIGINAL",
        "SUCCESS",
        trade.description,
        trade.attach or "",
        fee(-refund.refund),
        "0.60%",
        "0.00",
        yuan(refund.refund),
        "",
    ]


def trade_bill(store: Store, bill_date: date) -> str | None:
    """The bill of a Beijing-time day, or None when nothing was paid or refunded that day."""
    start = datetime.combine(bill_date, time(0), tzinfo=BEIJING)
    trades, refunds = store.paid_or_refunded_on(start, start + timedelta(days=1))
    if not trades and not refunds:
        return None
    rows = [_payment_row(t) for t in trades]
    paid_total = sum(t.total for t in trades)
    fees = sum(t.total for t in trades) - sum(r.refund for r in refunds)
    for refund in refunds:
        trade = store.get(refund.out_trade_no)
        if trade is not None:
            rows.append(_refund_row(refund, trade))
    refund_total = sum(r.refund for r in refunds)
    rows.sort(key=lambda row: row[0])
    summary = [
        str(len(rows)),
        yuan(paid_total),
        yuan(refund_total),
        "0.00",
        fee(fees),
        yuan(paid_total),
        yuan(refund_total),
    ]
    lines = [COLUMNS, *(_line(row) for row in rows), SUMMARY_COLUMNS, _line(summary)]
    return "\r\n".join(lines) + "\r\n"
