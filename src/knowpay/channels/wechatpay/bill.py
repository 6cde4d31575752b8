"""WeChat Pay's trade bill (交易账单, bill_type ALL): CSV text, every value prefixed with a
backtick, amounts in yuan, times in Beijing time, then a summary header and row."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Literal

from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import Bill, BillLine
from knowpay.channels.wechatpay.transformers import BEIJING
from knowpay.kit.money import Money, MoneyError

TRADE_TIME = "交易时间"
TRANSACTION_ID = "微信订单号"
OUT_TRADE_NO = "商户订单号"
TRADE_STATE = "交易状态"
CURRENCY = "货币种类"
SETTLEMENT_AMOUNT = "应结订单金额"
ORDER_AMOUNT = "订单金额"
REFUND_AMOUNT = "退款金额"
REQUESTED_REFUND = "申请退款金额"
SUMMARY_FIRST_COLUMN = "总交易单数"


def _value(cell: str) -> str:
    return cell.strip().removeprefix("`").strip()


def _amount(row: dict[str, str], columns: tuple[str, ...], currency: str) -> Money:
    for column in columns:
        text = row.get(column, "")
        if text:
            try:
                return Money.parse(text, currency)
            except MoneyError as exc:
                raise ProtocolError(f"bill column {column}: {exc}") from exc
    raise ProtocolError(f"a bill row has none of {', '.join(columns)}")


def _occurred_at(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise ProtocolError(f"bill time {text!r} is not yyyy-MM-dd HH:mm:ss") from exc


def parse_trade_bill(text: str, bill_date: date) -> Bill:
    """The payment and refund lines of a trade bill; the summary rows are checked for count."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        return Bill(bill_date, [])
    header = [_value(cell) for cell in rows[0]]
    missing = {TRADE_TIME, TRANSACTION_ID, OUT_TRADE_NO, TRADE_STATE} - set(header)
    if missing:
        raise ProtocolError(f"the bill header lacks {', '.join(sorted(missing))}")
    lines: list[BillLine] = []
    summary: list[str] | None = None
    data_rows = 0
    for index, cells in enumerate(rows[1:], start=1):
        values = [_value(cell) for cell in cells]
        if values and values[0] == SUMMARY_FIRST_COLUMN:
            summary = [_value(cell) for cell in rows[index + 1]] if index + 1 < len(rows) else []
            break
        data_rows += 1
        if len(values) < len(header):  # cut short: no answer to read, not a KeyError
            raise ProtocolError(f"a bill row has {len(values)} of {len(header)} columns")
        row = dict(zip(header, values, strict=False))
        currency = row.get(CURRENCY) or "CNY"
        state = row[TRADE_STATE]
        kind: Literal["payment", "refund"]
        if state == "SUCCESS":
            amount = _amount(row, (ORDER_AMOUNT, SETTLEMENT_AMOUNT), currency)
            kind = "payment"
        elif state == "REFUND":
            amount = _amount(row, (REQUESTED_REFUND, REFUND_AMOUNT), currency)
            kind = "refund"
        else:
            continue
        lines.append(
            BillLine(
                out_trade_no=row[OUT_TRADE_NO],
                gateway_trade_no=row[TRANSACTION_ID],
                amount=amount,
                kind=kind,
                occurred_at=_occurred_at(row[TRADE_TIME]),
            )
        )
    if summary and summary[0].isdigit() and int(summary[0]) != data_rows:
        raise ProtocolError(f"the bill summary counts {summary[0]} rows, the bill has {data_rows}")
    return Bill(bill_date, lines)
