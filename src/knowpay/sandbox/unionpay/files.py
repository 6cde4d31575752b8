"""The settlement file the simulated UnionPay hands out by its file transfer (txnType 76).

fileName is `{merId}_{yyyyMMdd}.zip` (the sample in UnionPay's SDK demo is
802310048993424_20150905.zip). The zip holds `INN{yyMMdd}88ZM_{merId}`, the general
transaction detail file: GBK, one transaction a line, 42 fixed-width fields each followed by
a space (the widths UnionPay's demo parseZMFile reads), and an empty
`INN{yyMMdd}88ZME_{merId}` (the error-transaction file, 22 fields). fileContent is the zip
deflated with a zlib header (java.util.zip.Deflater's default) and base64-encoded.

Which values go into the fields UnionPay's documents describe but knowpay's sources do not
show (交易代码, the institution codes, 商户手续费, 结算金额's sign) is the simulator's choice;
商户自定义域 carries the refund's reqReserved (an assumption, see the adapter's bill.py)."""

from __future__ import annotations

import base64
import io
import zipfile
import zlib
from datetime import date

from knowpay.sandbox.unionpay.book import Consume, Refund

# (name, width, right-aligned with zeros): in the order of the file.
LAYOUT: tuple[tuple[str, int, bool], ...] = (
    ("交易代码", 3, False),
    ("代理机构标识码", 11, False),
    ("发送机构标识码", 11, False),
    ("系统跟踪号", 6, True),
    ("交易传输时间", 10, True),
    ("账号", 19, False),
    ("交易金额", 12, True),
    ("商户类别", 4, False),
    ("终端类型", 2, False),
    ("查询流水号", 21, False),
    ("支付方式（旧）", 2, False),
    ("商户订单号", 32, False),
    ("支付卡类型", 2, False),
    ("原始交易的系统跟踪号", 6, False),
    ("原始交易日期时间", 10, False),
    ("商户手续费", 13, False),
    ("结算金额", 13, False),
    ("支付方式", 4, False),
    ("集团商户代码", 15, False),
    ("交易类型", 2, False),
    ("交易子类", 2, False),
    ("业务类型", 6, False),
    ("账号类型", 2, False),
    ("账单类型", 4, False),
    ("账单号码", 32, False),
    ("交互方式", 1, False),
    ("原交易查询流水号", 21, False),
    ("商户代码", 15, False),
    ("分账入账方式", 1, False),
    ("二级商户代码", 15, False),
    ("二级商户简称", 32, False),
    ("二级商户分账入账金额", 13, False),
    ("清算净额", 13, False),
    ("终端号", 8, False),
    ("商户自定义域", 32, False),
    ("优惠金额", 13, False),
    ("发票金额", 13, False),
    ("分期付款附加手续费", 12, False),
    ("分期付款期数", 2, False),
    ("交易介质", 1, False),
    ("保留使用1", 32, False),
    ("保留使用2", 98, False),
)
ENCODING = "gbk"
CONSUME_CODE, REFUND_CODE = "S22", "S30"
"""交易代码: the simulator's choice (knowpay reads 交易类型 instead)."""


def _cell(value: str, width: int, numeric: bool) -> bytes:
    raw = value.encode(ENCODING)
    if len(raw) > width:
        raise ValueError(f"{value!r} is wider than {width} bytes")
    pad = (b"0" if numeric else b" ") * (width - len(raw))
    return pad + raw if numeric else raw + pad


def _signed_amount(sign: str, fen: int) -> str:
    return f"{sign}{fen:012d}"


def detail_line(mer_id: str, consume: Consume, refund: Refund | None) -> bytes:
    """One line of the ZM file: the consume, or a refund of it."""
    if refund is None:
        assert consume.paid_at is not None
        assert consume.query_id
        assert consume.trace_no
        moment, amount = consume.paid_at, consume.amount
        values = {
            "交易代码": CONSUME_CODE,
            "系统跟踪号": consume.trace_no,
            "查询流水号": consume.query_id,
            "商户订单号": consume.order_id,
            "结算金额": _signed_amount("C", amount),
            "交易类型": "01",
            "交易子类": "01",
        }
    else:
        moment, amount = refund.created_at, refund.amount
        values = {
            "交易代码": REFUND_CODE,
            "系统跟踪号": refund.trace_no,
            "查询流水号": refund.query_id,
            "商户订单号": refund.order_id,
            "原始交易的系统跟踪号": consume.trace_no or "",
            "原始交易日期时间": f"{consume.paid_at:%m%d%H%M%S}" if consume.paid_at else "",
            "结算金额": _signed_amount("D", amount),
            "交易类型": "04",
            "交易子类": "00",
            "原交易查询流水号": consume.query_id or "",
            "商户自定义域": refund.req_reserved or "",
        }
    values.update(
        {
            "代理机构标识码": "00010000",
            "发送机构标识码": "00010000",
            "交易传输时间": f"{moment:%m%d%H%M%S}",
            "账号": "6216***********0018",
            "交易金额": str(amount),
            "商户类别": "5999",
            "终端类型": consume.channel_type,
            "支付卡类型": "01",
            "商户手续费": _signed_amount("C", 0),
            "支付方式": "0001",
            "业务类型": "000201",
            "账号类型": "01",
            "商户代码": mer_id,
            "清算净额": _signed_amount("C" if refund is None else "D", amount),
        }
    )
    return b" ".join(_cell(values.get(name, ""), width, num) for name, width, num in LAYOUT)


def settlement_zip(mer_id: str, day: date, items: list[tuple[Consume, Refund | None]]) -> bytes:
    """The day's zip: the ZM file with one line per transaction, and an empty ZME file."""
    body = b"".join(detail_line(mer_id, c, r) + b"\r\n" for c, r in items)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"INN{day:%y%m%d}88ZM_{mer_id}", body)
        archive.writestr(f"INN{day:%y%m%d}88ZME_{mer_id}", b"")
    return buffer.getvalue()


def file_name(mer_id: str, day: date) -> str:
    return f"{mer_id}_{day:%Y%m%d}.zip"


def file_content(zipped: bytes) -> str:
    """What fileContent carries: zlib-deflated, base64 (AcpService.EnCodeFileContent)."""
    return base64.b64encode(zlib.compress(zipped)).decode("ascii")
