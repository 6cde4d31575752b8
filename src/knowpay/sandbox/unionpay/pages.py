"""The payer's pages: UnionPay's card-payment page a front consume lands on, the page that
returns the payer to frontUrl with the signed front notification, and the error page."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from knowpay.sandbox.unionpay.book import Consume

_STYLE = (
    "body{font-family:sans-serif;max-width:32rem;margin:3rem auto;color:#333}"
    "h1{color:#d7000f}.amount{font-size:2rem}button{font-size:1rem;margin-right:1rem;"
    "padding:.5rem 1.5rem}.pay{background:#d7000f;color:#fff;border:0}"
)


def _page(title: str, body: str, *, onload: str = "") -> str:
    attribute = f' onload="{onload}"' if onload else ""
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body{attribute}><h1>银联在线支付 · 沙箱</h1>{body}</body></html>"
    )


def card_page(consume: Consume, action: str) -> str:
    """Pay or cancel: a form posting `outcome` to `action`."""
    return _page(
        "银联在线支付",
        f"<p>{escape(consume.commodity)}</p>"
        f'<p class="amount">¥ {consume.amount // 100}.{consume.amount % 100:02d}</p>'
        f"<p>订单号 {escape(consume.order_id)} · 订单时间 {escape(consume.txn_time)}</p>"
        "<p>卡号 6216 **** **** 0018（沙箱测试卡）</p>"
        f'<form method="post" action="{escape(action)}">'
        '<button class="pay" name="outcome" value="pay">确认付款</button>'
        '<button name="outcome" value="cancel">取消</button></form>',
    )


def return_to_merchant(front_url: str, fields: Mapping[str, str]) -> str:
    """The front notification: the signed result posted to frontUrl by the browser."""
    inputs = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    return _page(
        "支付成功",
        f'<p>支付成功，正在返回商户…</p><form method="post" action="{escape(front_url)}">'
        f'{inputs}<button type="submit">返回商户</button></form>',
        onload="document.forms[0].submit()",
    )


def paid(consume: Consume) -> str:
    return _page("支付成功", f"<p>支付成功：订单 {escape(consume.order_id)}</p>")


def cancelled(consume: Consume) -> str:
    return _page("已取消", f"<p>您已取消支付（订单 {escape(consume.order_id)}）。</p>")


def error(code: str, message: str) -> str:
    """What UnionPay shows in the browser when a front request is refused."""
    return _page(
        "银联在线支付 - 错误",
        f"<p>交易失败</p><p>应答码 respCode={escape(code)}</p><p>{escape(message)}</p>",
    )
