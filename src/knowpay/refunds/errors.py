"""Errors of the refunds domain."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound, Unprocessable


class RefundNotFound(NotFound):
    code, title = "refund_not_found", "No such refund"


class RefundExceedsCaptured(Unprocessable):
    code, title = "refund_exceeds_captured", "The refund is more than is left to refund"


class TopUpNotRefundable(Conflict):
    code, title = "top_up_not_refundable", "A wallet top-up is not refunded on request"


class OrderNotPaid(Conflict):
    code, title = "order_not_paid", "Only a paid order can be refunded"


class RefundWindowClosed(Unprocessable):
    code, title = "refund_window_closed", "The refund window for this order has closed"
