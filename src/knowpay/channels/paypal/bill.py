"""A day of PayPal transactions from the Transaction Search API
(`GET /v1/reporting/transactions`): one row per money movement, `transaction_info` holding the
event code (T00xx payments, T1107 a merchant's refund), status (S = success), amount
(negative for refunds), the capture or refund id and the caller's invoice_id / custom_field.

PayPal's report does not carry the order id: a line's gateway_trade_no is the transaction
id (the capture's for a payment, the refund's for a refund). PayPal says transactions can
take up to three hours to appear; a day is asked for once it is over."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from knowpay.channels.errors import ProtocolError
from knowpay.channels.paypal.client import PayPalClient
from knowpay.channels.paypal.transformers import money, parse_time
from knowpay.channels.types import Bill, BillLine
from knowpay.kit.money import Money

PATH = "/v1/reporting/transactions"
PAGE_SIZE = 500
MAX_PAGES = 200
MERCHANT_REFUND = "T1107"
SUCCESS = "S"


def _stamp(moment: datetime) -> str:
    """Transaction Search's date form: seconds and a numeric offset (`…T00:00:00+0000`)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


def fetch(client: PayPalClient, bill_date: date) -> Bill:
    """Every successful payment and refund of a UTC day, all pages."""
    start = datetime.combine(bill_date, time.min)
    end = start + timedelta(days=1) - timedelta(seconds=1)
    lines: list[BillLine] = []
    page = 1
    while True:
        data = client.call(
            "GET",
            PATH,
            params={
                "start_date": _stamp(start),
                "end_date": _stamp(end),
                "fields": "transaction_info",
                "page_size": str(PAGE_SIZE),
                "page": str(page),
            },
        )
        lines.extend(parse_page(data))
        total_pages = data.get("total_pages", 1)
        if not isinstance(total_pages, int) or page >= total_pages:
            break
        if page >= MAX_PAGES:
            raise ProtocolError(f"Transaction Search has more than {MAX_PAGES} pages for a day")
        page += 1
    return Bill(bill_date, lines)


def parse_page(data: Mapping[str, Any]) -> list[BillLine]:
    details = data.get("transaction_details")
    if not isinstance(details, list):
        raise ProtocolError("a Transaction Search answer without transaction_details")
    lines: list[BillLine] = []
    for detail in details:
        info = detail.get("transaction_info") if isinstance(detail, Mapping) else None
        if not isinstance(info, Mapping):
            raise ProtocolError("a transaction without transaction_info")
        line = _line(info)
        if line is not None:
            lines.append(line)
    return lines


def _line(info: Mapping[str, Any]) -> BillLine | None:
    code = str(info.get("transaction_event_code") or "")
    kind: Literal["payment", "refund"]
    if code == MERCHANT_REFUND:
        kind = "refund"
    elif code.startswith("T00"):
        kind = "payment"
    else:
        return None  # fees, transfers, holds, reversals: not a payment or refund of ours
    if info.get("transaction_status") != SUCCESS:
        return None
    out_trade_no = info.get("invoice_id") or info.get("custom_field")
    transaction_id = info.get("transaction_id")
    if not isinstance(out_trade_no, str) or not out_trade_no:
        return None  # not made through knowpay (a payment button, a manual invoice …)
    if not isinstance(transaction_id, str) or not transaction_id:
        raise ProtocolError(f"a transaction without transaction_id: {dict(info)}")
    amount = money(info.get("transaction_amount"), "transaction_amount")
    occurred_at = parse_time(
        info.get("transaction_initiation_date") or info.get("transaction_updated_date")
    )
    if occurred_at is None:
        raise ProtocolError(f"transaction {transaction_id} has no date")
    return BillLine(
        out_trade_no=out_trade_no,
        gateway_trade_no=transaction_id,
        amount=Money(abs(amount.amount_minor), amount.currency),
        kind=kind,
        occurred_at=occurred_at,
    )
