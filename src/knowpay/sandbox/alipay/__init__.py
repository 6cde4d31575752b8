"""The Alipay gateway simulator: RSA2 OpenAPI gateway, cashier, notifications, bills, faults."""

from knowpay.sandbox.alipay.app import create_app

__all__ = ["create_app"]
