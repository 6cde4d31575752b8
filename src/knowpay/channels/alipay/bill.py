"""Alipay's trade bill: alipay.data.dataservice.bill.downloadurl.query names a short-lived URL;
the file there is a zip of GBK CSVs, `<pid>0156_<yyyymmdd>_业务明细.csv` holding one row per
payment (业务类型 交易) or refund (退款) between `#` comment lines, numbers padded with tabs."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from typing import Literal

from knowpay.channels.alipay.client import AlipayClient
from knowpay.channels.alipay.transformers import from_yuan, parse_beijing_time
from knowpay.channels.errors import ProtocolError
from knowpay.channels.types import Bill, BillLine
from knowpay.kit.money import Money

DETAIL_SUFFIX = "_业务明细.csv"
_KINDS: dict[str, Literal["payment", "refund"]] = {"交易": "payment", "退款": "refund"}
_UTF8_NAME_FLAG = 0x800


def fetch(client: AlipayClient, bill_date: date) -> Bill:
    """Ask for the day's trade bill, download it and parse it."""
    content = client.call(
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": "trade", "bill_date": bill_date.isoformat()},
        idempotent=True,
    )
    url = content.get("bill_download_url")
    if not isinstance(url, str) or not url:
        raise ProtocolError("the bill answer names no bill_download_url")
    return parse(client.download(url), bill_date)


def _member_name(info: zipfile.ZipInfo) -> str:
    """Alipay writes GBK file names without the UTF-8 flag; zipfile reads those as cp437."""
    if info.flag_bits & _UTF8_NAME_FLAG:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _detail_csv(archive: zipfile.ZipFile) -> str:
    for info in archive.infolist():
        name = _member_name(info)
        if name.endswith(DETAIL_SUFFIX):
            return archive.read(info).decode("gb18030")
    raise ProtocolError("the bill has no 业务明细 file")


def parse(zipped: bytes, bill_date: date) -> Bill:
    """The lines of Alipay's zipped detail bill; refund lines carry the refunded amount."""
    try:
        with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
            text = _detail_csv(archive)
    except zipfile.BadZipFile as exc:
        raise ProtocolError(f"the bill is not a zip file: {exc}") from exc
    rows = [
        [cell.strip().strip("\t").strip() for cell in row]
        for row in csv.reader(io.StringIO(text))
        if row and not row[0].startswith("#")
    ]
    if not rows:
        raise ProtocolError("the bill has no header row")
    header, body = rows[0], rows[1:]
    column = _columns(header)
    lines: list[BillLine] = []
    for row in body:
        if len(row) < len(header):  # cut short: no answer to read, not an IndexError
            raise ProtocolError(f"a bill row has {len(row)} of {len(header)} columns")
        kind = _KINDS.get(row[column["kind"]])
        if kind is None:
            continue
        amount = from_yuan(row[column["amount"]], "订单金额")
        occurred_at = parse_beijing_time(row[column["finished"]] or row[column["created"]])
        if occurred_at is None:
            raise ProtocolError(f"a bill row without a time: {row}")
        lines.append(
            BillLine(
                out_trade_no=row[column["out_trade_no"]],
                gateway_trade_no=row[column["trade_no"]],
                amount=Money(abs(amount.amount_minor), amount.currency),
                kind=kind,
                occurred_at=occurred_at,
            )
        )
    return Bill(bill_date, lines)


_HEADERS = {
    "trade_no": "支付宝交易号",
    "out_trade_no": "商户订单号",
    "kind": "业务类型",
    "created": "创建时间",
    "finished": "完成时间",
    "amount": "订单金额",
}


def _columns(header: list[str]) -> dict[str, int]:
    """Columns by name (Alipay has added columns over the years; the names stay)."""
    found: dict[str, int] = {}
    for key, title in _HEADERS.items():
        index = next((i for i, cell in enumerate(header) if cell.startswith(title)), None)
        if index is None:
            raise ProtocolError(f"the bill has no {title} column")
        found[key] = index
    return found
