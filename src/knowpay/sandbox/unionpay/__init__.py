"""The UnionPay online gateway simulator (ACP 5.1.0): front consume and card page, refund,
query, certificate-signed answers and back notifications, faults."""

from knowpay.sandbox.unionpay.app import create_app

__all__ = ["create_app"]
