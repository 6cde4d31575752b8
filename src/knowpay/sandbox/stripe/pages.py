"""The payer's page: what Stripe.js and the Payment Element do on a merchant's checkout,
reduced to an HTML form. It shows the PaymentIntent (found by id and client secret) and posts
a test card number with the publishable key and the client secret to confirm it."""

from __future__ import annotations

from html import escape
from typing import Any

from knowpay.sandbox.stripe.money import display

_STYLE = (
    "body{font-family:sans-serif;max-width:30rem;margin:3rem auto;color:#30313d}"
    "h1{color:#635bff}.amount{font-size:2rem}input{font-size:1rem;padding:.4rem;width:100%}"
    "button{font-size:1rem;margin-top:1rem;padding:.5rem 1.5rem;background:#635bff;color:#fff;"
    "border:0;border-radius:4px}.error{color:#df1b41}small{color:#6a7383}"
)
TEST_CARDS_HINT = (
    "4242 4242 4242 4242 succeeds · 4000 0000 0000 0002 is declined · "
    "4000 0000 0000 9995 has insufficient funds"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>Stripe · test mode</h1>{body}</body></html>"
    )


def checkout(
    intent: dict[str, Any],
    action: str,
    publishable_key: str,
    return_url: str | None,
    error: str | None = None,
) -> str:
    """The card form for a PaymentIntent that can still be confirmed."""
    amount = display(intent["amount"], intent["currency"])
    description = escape(intent.get("description") or "")
    hidden = {
        "key": publishable_key,
        "client_secret": intent["client_secret"],
        "return_url": return_url or "",
    }
    fields = "".join(
        f'<input type="hidden" name="{name}" value="{escape(value)}">'
        for name, value in hidden.items()
    )
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    return _page(
        "Pay",
        f'<p>{description}</p><p class="amount">{escape(amount)}</p>{problem}'
        f'<form method="post" action="{escape(action)}">{fields}'
        '<label>Card number <input name="card_number" value="4242 4242 4242 4242" '
        'autocomplete="off"></label>'
        f"<small>{TEST_CARDS_HINT}</small><br>"
        f'<button type="submit">Pay {escape(amount)}</button></form>',
    )


def outcome(intent: dict[str, Any]) -> str:
    amount = escape(display(intent["amount"], intent["currency"]))
    if intent["status"] == "succeeded":
        return _page("Paid", f"<p>Payment succeeded: {amount}.</p>")
    return _page("Not payable", f"<p>This payment is {escape(intent['status'])} ({amount}).</p>")


def not_found() -> str:
    return _page("Not found", "<p>No such payment, or the link is not valid.</p>")
