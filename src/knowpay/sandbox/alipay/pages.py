"""The buyer's pages: the cashier a page/wap redirect lands on, the QR "scan" page, and the
error page Alipay shows when a redirect's signature or parameters are wrong."""

from __future__ import annotations

from html import escape

from knowpay.sandbox.alipay.book import Trade

_STYLE = (
    "body{font-family:sans-serif;max-width:32rem;margin:3rem auto;color:#333}"
    "h1{color:#1677ff}.amount{font-size:2rem}button{font-size:1rem;margin-right:1rem;"
    "padding:.5rem 1.5rem}.pay{background:#1677ff;color:#fff;border:0}"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>支付宝 · 沙箱</h1>{body}</body></html>"
    )


def cashier(trade: Trade, action: str) -> str:
    """One click pays (or fails) the trade: a form posting `outcome` to `action`."""
    return _page(
        "支付宝 - 收银台",
        f"<p>{escape(trade.subject)}</p>"
        f'<p class="amount">¥ {trade.total_amount:.2f}</p>'
        f"<p>订单号 {escape(trade.out_trade_no)} · 交易号 {escape(trade.trade_no)}</p>"
        f'<form method="post" action="{escape(action)}">'
        '<button class="pay" name="outcome" value="pay">确认付款</button>'
        '<button name="outcome" value="fail">付款失败</button></form>',
    )


def outcome(trade: Trade, paid: bool) -> str:
    if paid:
        return _page("支付成功", f"<p>支付成功：¥ {trade.total_amount:.2f}</p>")
    return _page(
        "支付未完成", f"<p>付款未完成（交易状态 {escape(trade.status)}），可返回重新付款。</p>"
    )


def error(sub_code: str, sub_msg: str) -> str:
    """What Alipay shows in the browser when a redirect is refused."""
    return _page(
        "支付宝 - 错误",
        f"<p>错误代码 {escape(sub_code.removeprefix('isv.'))}</p>"
        f"<p>错误原因: {escape(sub_msg)}</p>",
    )
