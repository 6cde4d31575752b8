"""What a person reads when something goes wrong: a message per stable error `code`, in
the catalog (the API's English `detail` is never shown on a page)."""

from __future__ import annotations

from knowpay.web.i18n import Gettext


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark a message for the catalog without translating it here."""
    return message


GENERIC = N_("Something went wrong. Please try again in a moment.")

MESSAGES: dict[str, str] = {
    "not_found": N_("We could not find that page."),
    "forbidden": N_("Your account may not open this page."),
    "csrf_failed": N_("The form had expired. Reload the page and try again."),
    "invalid_credentials": N_("The email or the password is wrong."),
    "rate_limited": N_("Too many tries. Wait a minute and try again."),
    "order_not_found": N_("We could not find this order."),
    "payment_not_found": N_("We could not find this payment."),
    "refund_not_found": N_("We could not find this refund."),
    "settlement_not_found": N_("We could not find this statement."),
    "subscription_not_found": N_("We could not find this subscription."),
    "subscription_not_changeable": N_(
        "This subscription cannot be changed now: it has ended, or the change was made already."
    ),
    "order_expired": N_("This order has expired and can no longer be paid."),
    "order_already_paid": N_("This order is already paid."),
    "order_not_payable": N_("This order can no longer be paid."),
    "no_channel_available": N_("No payment method can pay this order right now."),
    "channel_unavailable": N_(
        "This payment method is not reachable right now. Please choose another one."
    ),
    "unknown_channel": N_("This payment method is not available."),
    "channel_not_configured": N_("This payment method is not available."),
    "gateway_error": N_("The payment provider refused to start the payment. Please try again."),
    "risk_denied": N_("For your security this payment was declined. Contact support if needed."),
    "limit_exceeded": N_("This payment is over your payment limit."),
    "amount_not_supported": N_("This payment method cannot take this amount."),
    "currency_not_supported": N_("This payment method cannot take this currency."),
    "refund_exceeds_captured": N_("Nothing is left to refund on this order."),
    "order_not_paid": N_("Only a paid order can be refunded."),
    "refund_window_closed": N_("The time to ask for a refund of this order has passed."),
    "refund_not_pending": N_("This refund cannot be changed now."),
    "invalid_cashier_link": N_("This payment link is not valid or has expired."),
    # Paying from the knowledge-coin wallet (the cashier adds the balance, the tries left or
    # the end of the lock when it knows them).
    "insufficient_balance": N_("Your knowledge-coin balance is too low for this order."),
    "payment_password_incorrect": N_("The payment password is wrong."),
    "payment_password_locked": N_(
        "Your payment password is locked after too many wrong tries. Choose another payment "
        "method, or try again later."
    ),
    "payment_password_not_set": N_(
        "You have not set a payment password yet. Set one in the app you shop in, then pay "
        "with knowledge coins."
    ),
    "payment_password_format": N_("Enter your 6-digit payment password."),
    "wallet_login_required": N_("Log in to pay with knowledge coins."),
    "channel_not_for_top_ups": N_(
        "A top-up cannot be paid with knowledge coins. Choose another payment method."
    ),
    "wallet_currency_not_supported": N_("Knowledge coins cannot pay an order in this currency."),
    "validation_error": N_("Some of the details you entered are not valid."),
    "internal_error": GENERIC,
}


def message_for(code: str, _: Gettext) -> str:
    """The translated sentence for an error code (a general one for codes not listed)."""
    return _(MESSAGES.get(code, GENERIC))
