"""The trade bill as Alipay serves it: `<pid>0156_<yyyymmdd>.csv.zip` holding GBK CSV files
(`…_业务明细.csv`, `…_业务明细(汇总).csv`) with `#` comment lines around the rows, ids and
times padded with a tab so spreadsheets keep them as text, refunds as negative amounts."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal

from knowpay.sandbox.alipay.book import Trade

DETAIL_HEADER = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]
RULE = "#-----------------------------------------{}------------------------------------"
ENCODING = "gbk"
_UTF8_NAME_FLAG = 0x800


class _GbkNamedMember(zipfile.ZipInfo):
    """Alipay's zips carry GBK file names without the UTF-8 flag."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's name
        return self.filename.encode(ENCODING), self.flag_bits & ~_UTF8_NAME_FLAG


def _row(
    trade: Trade, kind: str, amount: Decimal, finished: datetime, request_no: str
) -> list[str]:
    zero = "0.00"
    return [
        trade.trade_no + "\t",
        trade.out_trade_no + "\t",
        kind,
        trade.subject,
        f"{trade.created_at:%Y-%m-%d %H:%M:%S}",
        f"{finished:%Y-%m-%d %H:%M:%S}",
        "",
        "",
        "",
        "",
        trade.buyer_logon_id,
        f"{amount:.2f}",
        f"{amount:.2f}",
        zero,
        zero,
        zero,
        zero,
        zero,
        "",
        zero,
        zero,
        request_no + "\t" if request_no else "",
        zero,
        zero,
        "",
    ]


def _text(before: list[str], rows: list[list[str]], after: list[str]) -> bytes:
    buffer = io.StringIO()
    buffer.writelines(line + "\r\n" for line in before)
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    buffer.writelines(line + "\r\n" for line in after)
    return buffer.getvalue().encode(ENCODING, errors="replace")


def build(pid: str, day: date, trades: list[Trade], exported_at: datetime) -> tuple[str, bytes]:
    """The zip's file name and bytes for one Beijing day."""
    rows: list[list[str]] = []
    paid_total = refund_total = Decimal("0.00")
    paid_count = refund_count = 0
    for trade in trades:
        if trade.paid_at and trade.paid_at.date() == day:
            rows.append(_row(trade, "交易", trade.total_amount, trade.paid_at, ""))
            paid_total += trade.total_amount
            paid_count += 1
        for refund in trade.refunds.values():
            if refund.refunded_at.date() == day:
                rows.append(
                    _row(trade, "退款", -refund.amount, refund.refunded_at, refund.out_request_no)
                )
                refund_total -= refund.amount
                refund_count += 1
    start = datetime(day.year, day.month, day.day)
    period = (
        f"#起始日期：[{start:%Y年%m月%d日 %H:%M:%S}]   "
        f"终止日期：[{start + timedelta(days=1):%Y年%m月%d日 %H:%M:%S}]"
    )
    exported = f"#导出时间：[{exported_at:%Y年%m月%d日 %H:%M:%S}]"
    detail = _text(
        ["#支付宝业务明细查询", f"#账号：[{pid}0156]", period, RULE.format("业务明细列表")],
        [DETAIL_HEADER, *rows],
        [
            RULE.format("业务明细列表结束"),
            f"#交易合计：{paid_count}笔，商家实收共{paid_total:.2f}元，商家优惠共0.00元",
            f"#退款合计：{refund_count}笔，商家实收退款共{refund_total:.2f}元，商家优惠退款共0.00元",
            exported,
        ],
    )
    summary = _text(
        ["#支付宝业务汇总查询", f"#账号：[{pid}0156]", period, RULE.format("业务汇总列表")],
        [
            ["门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）"],
            ["", "合计", str(paid_count), str(refund_count), f"{paid_total + refund_total:.2f}"],
        ],
        [RULE.format("业务汇总列表结束"), exported],
    )
    stem = f"{pid}0156_{day:%Y%m%d}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (
            (f"{stem}_业务明细.csv", detail),
            (f"{stem}_业务明细(汇总).csv", summary),
        ):
            member = _GbkNamedMember(name, date_time=exported_at.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, data)
    return f"{stem}.csv.zip", buffer.getvalue()
