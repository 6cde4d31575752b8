"""UnionPay's settlement file of a day, fetched by the file transfer (文件传输类交易).

The request (the official SDK's demo Form_7_2_FileTransfer): txnType 76, txnSubType 01,
bizType 000000, accessType 0, channelType 07, fileType 00, settleDate MMDD (the clearing
day), txnTime now, posted to UnionPay's file host (acpsdk.fileTransUrl). The signed answer
carries fileName (the zip's name, `{merId}_{yyyyMMdd}.zip`) and fileContent: the zip,
deflated (zlib, as java.util.zip.Deflater writes it) and base64-encoded — the SDK's
AcpService.deCodeFileContent undoes it as base64 decode, then inflate. respCode 98 means no
file for that day.

Inside the zip, `INN{yyMMdd}88ZM_{merId}` is the general transaction detail file (全渠道商户
一般交易明细流水文件): GBK text, one transaction a line, 42 fixed-width fields each followed by
one separator byte (the widths the SDK demo's parseZMFile reads). knowpay reads:

| # | field | width | use |
| --- | --- | --- | --- |
| 5 | 交易传输时间 (MMDDhhmmss, Beijing) | 10 | occurred_at |
| 7 | 交易金额 (fen) | 12 | amount |
| 10 | 查询流水号 (queryId) | 21 | gateway_trade_no of a payment |
| 12 | 商户订单号 (orderId) | 32 | the payment (or refund) knowpay named |
| 20 | 交易类型 (txnType) | 2 | 01 consume → payment; 04 refund, 31 undo → refund |
| 27 | 原交易查询流水号 (origQryId) | 21 | a refund's consume |
| 28 | 商户代码 (merId) | 15 | must be ours |
| 35 | 商户自定义域 | 32 | see below |

A refund line names knowpay's payment. Its 商户订单号 is the refund's own orderId, so the
payment is the consume whose queryId its 原交易查询流水号 names when that consume is in the
same file; else 商户自定义域 when it holds a knowpay payment id (knowpay sends the payment id
as the refund's reqReserved; that UnionPay copies reqReserved there is not verified); else
the line is named by the refund's own number, and reconciliation reports it unmatched."""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from knowpay.channels.errors import ChannelDeclined, ChannelUnavailable, ProtocolError
from knowpay.channels.types import Bill, BillLine
from knowpay.channels.unionpay import transformers as tf
from knowpay.channels.unionpay.client import UnionPayClient
from knowpay.kit.money import Money

TXN_TYPE, TXN_SUB_TYPE = "76", "01"
"""The file transfer: txnType 76 (文件传输), txnSubType 01 (对账文件下载)."""
BIZ_TYPE = "000000"
FILE_TYPE = "00"
"""fileType 00: the merchant's settlement files of the day."""
NO_FILE = "98"
"""respCode 98: there is no file for that settleDate (文件不存在)."""
ENCODING = "gb18030"
"""The SDK demo reads the files as GBK; gb18030 reads every GBK byte sequence the same."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""More than any day's file of a merchant: a larger one is refused, not inflated."""

WIDTHS = (
    *(3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2),
    *(6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98),
)
"""The general transaction detail file's 42 fields, in bytes (parseZMFile in the SDK demo)."""
TRACE_TIME, AMOUNT, QUERY_ID, ORDER_ID = 5, 7, 10, 12
TXN_TYPE_FIELD, ORIG_QUERY_ID, MER_ID, MER_RESERVED = 20, 27, 28, 35
_READ = max(TRACE_TIME, AMOUNT, QUERY_ID, ORDER_ID, TXN_TYPE_FIELD, ORIG_QUERY_ID, MER_ID)
_KINDS: dict[str, Literal["payment", "refund"]] = {"01": "payment", "04": "refund", "31": "refund"}
_DETAIL_NAME = re.compile(r"^INN(\d{6})88ZM_(\d+)$")
_DIGITS = re.compile(r"^\d+$")
_PAYMENT_ID = re.compile(r"^pay_[0-9a-z]{10,}$")


def fetch(client: UnionPayClient, bill_date: date, now: datetime) -> Bill:
    """Ask for the day's settlement file and read its transaction detail; no file is an
    empty bill."""
    fields = client.fields(
        TXN_TYPE,
        TXN_SUB_TYPE,
        bizType=BIZ_TYPE,
        channelType=tf.DESKTOP,
        txnTime=tf.beijing_time(now),
        settleDate=f"{bill_date:%m%d}",
        fileType=FILE_TYPE,
    )
    answer = client.file_transfer(fields)
    code = answer.get("respCode", "")
    if code == NO_FILE:
        return Bill(bill_date, [])
    if code in tf.IN_DOUBT_CODES:
        raise ChannelUnavailable(f"UnionPay could not answer for the file now: {code}")
    if code not in tf.SUCCESS_CODES:
        raise ChannelDeclined(code or "unknown", answer.get("respMsg", ""))
    zipped = decode_file_content(answer.get("fileContent", ""))
    return parse(zipped, bill_date, client.mer_id)


def decode_file_content(content: str) -> bytes:
    """fileContent → the zip: base64, then inflate (AcpService.deCodeFileContent)."""
    if not content:
        raise ProtocolError("UnionPay answered 00 without fileContent")
    try:
        deflated = base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"fileContent is not base64: {exc}") from exc
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(deflated, MAX_FILE_BYTES)
    except zlib.error as exc:
        raise ProtocolError(f"fileContent does not inflate: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ProtocolError(f"the settlement file is larger than {MAX_FILE_BYTES} bytes")
    if not inflater.eof:
        raise ProtocolError("fileContent is cut short")
    return data


def parse(zipped: bytes, bill_date: date, mer_id: str) -> Bill:
    """The lines of the day's general transaction detail file inside UnionPay's zip."""
    text = _detail_file(zipped, bill_date, mer_id)
    rows = [_row(number, raw) for number, raw in enumerate(text.splitlines(), 1) if raw.strip()]
    consumes = {row.query_id: row.order_id for row in rows if row.txn_type == "01"}
    lines: list[BillLine] = []
    for row in rows:
        kind = _KINDS.get(row.txn_type)
        if kind is None:
            continue  # preauthorisations and the like: knowpay makes none
        if row.mer_id != mer_id:
            raise ProtocolError(f"line {row.number} is of merchant {row.mer_id}, not ours")
        occurred_at = _trace_time(row.trace_time, bill_date, row.number)
        amount = Money(_fen(row.amount, row.number), tf.CURRENCY)
        if kind == "payment":
            out_trade_no, trade_no = tf.reference(row.order_id), row.query_id
        else:
            out_trade_no, trade_no = _refunded_payment(row, consumes), row.orig_query_id
        lines.append(BillLine(out_trade_no, trade_no, amount, kind, occurred_at))
    return Bill(bill_date, lines)


@dataclass(frozen=True, slots=True)
class _Row:
    number: int
    trace_time: str
    amount: str
    query_id: str
    order_id: str
    txn_type: str
    orig_query_id: str
    mer_id: str
    mer_reserved: str


def _row(number: int, line: str) -> _Row:
    """One line cut into its fields by byte widths (GBK: a Chinese character is two)."""
    raw = line.encode(ENCODING)
    fields: list[str] = []
    start = 0
    for index, width in enumerate(WIDTHS, 1):
        chunk = raw[start : start + width]
        if len(chunk) < width and index <= _READ:
            raise ProtocolError(f"line {number} of the settlement file is cut short")
        try:
            fields.append(chunk.decode(ENCODING).strip())
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"line {number}, field {index}, is not GBK: {exc}") from exc
        start += width + 1

    def field(index: int) -> str:
        return fields[index - 1]

    return _Row(
        number,
        field(TRACE_TIME),
        field(AMOUNT),
        field(QUERY_ID),
        field(ORDER_ID),
        field(TXN_TYPE_FIELD),
        field(ORIG_QUERY_ID),
        field(MER_ID),
        field(MER_RESERVED),
    )


def _detail_file(zipped: bytes, bill_date: date, mer_id: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
            for info in archive.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                found = _DETAIL_NAME.match(name)
                if not found:
                    continue
                if (found.group(1), found.group(2)) != (f"{bill_date:%y%m%d}", mer_id):
                    raise ProtocolError(f"the file holds {name}, not the day's file of ours")
                if info.file_size > MAX_FILE_BYTES:
                    raise ProtocolError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
                return archive.read(info).decode(ENCODING)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ProtocolError(f"the settlement file is not a readable zip: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"the transaction detail file is not GBK: {exc}") from exc
    raise ProtocolError("the settlement file holds no general transaction detail (ZM) file")


def _fen(text: str, number: int) -> int:
    if len(text) > 12 or not _DIGITS.match(text) or int(text) <= 0:
        raise ProtocolError(f"line {number}: 交易金额 {text!r} is not an amount in fen")
    return int(text)


def _trace_time(text: str, bill_date: date, number: int) -> datetime:
    """交易传输时间, MMDDhhmmss in Beijing time, in the year that puts it nearest the day."""
    if len(text) != 10 or not _DIGITS.match(text):
        raise ProtocolError(f"line {number}: 交易传输时间 {text!r} is not MMDDhhmmss")
    noon = datetime(bill_date.year, bill_date.month, bill_date.day, 12, tzinfo=tf.BEIJING)
    best: datetime | None = None
    for year in (bill_date.year - 1, bill_date.year, bill_date.year + 1):
        try:
            moment = datetime.strptime(f"{year}{text}", tf.TIME_FORMAT).replace(tzinfo=tf.BEIJING)
        except ValueError:
            continue  # 0229 outside a leap year
        if best is None or abs(moment - noon) < abs(best - noon):
            best = moment
    if best is None:
        raise ProtocolError(f"line {number}: 交易传输时间 {text!r} is not a time")
    return best.astimezone(UTC)


def _refunded_payment(row: _Row, consumes: dict[str, str]) -> str:
    """The payment a refund line is of (see the module's note); its own number otherwise."""
    consume = consumes.get(row.orig_query_id)
    if consume:
        return tf.reference(consume)
    if _PAYMENT_ID.match(row.mer_reserved):
        return row.mer_reserved
    return tf.reference(row.order_id)
