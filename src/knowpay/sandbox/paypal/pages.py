"""The buyer's pages: PayPal's approval page (`/checkoutnow?token=…`) with Approve and
Cancel, and the page shown when an order cannot be approved."""

from __future__ import annotations

from html import escape

from knowpay.sandbox.paypal.store import Order, fmt

_STYLE = (
    "body{font-family:sans-serif;max-width:32rem;margin:3rem auto;color:#2c2e2f}"
    "h1{color:#003087}.amount{font-size:2rem}button{font-size:1rem;margin-right:1rem;"
    "padding:.5rem 1.5rem;border-radius:1.5rem}.approve{background:#0070ba;color:#fff;border:0}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>PayPal · sandbox</h1>{body}</body></html>"
    )


def checkout(order: Order, action: str) -> str:
    """The buyer, logged in as a sandbox payer, approves or cancels the order."""
    return _page(
        "PayPal Checkout",
        f"<p>{escape(order.description or 'Your order')}</p>"
        f'<p class="amount">{fmt(order.currency, order.value)} {escape(order.currency)}</p>'
        f"<p>Order {escape(order.id)} · invoice {escape(order.invoice_id or '-')}</p>"
        f'<form method="post" action="{escape(action)}">'
        '<button class="approve" name="action" value="approve">Pay Now</button>'
        '<button name="action" value="cancel">Cancel and return</button></form>',
    )


def done(order: Order, approved: bool) -> str:
    if approved:
        return _page("Approved", f"<p>You approved order {escape(order.id)}.</p>")
    return _page("Cancelled", f"<p>You cancelled order {escape(order.id)}.</p>")


def error(title: str, message: str) -> str:
    return _page(title, f"<p>{escape(message)}</p>")
