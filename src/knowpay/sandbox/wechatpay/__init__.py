"""The WeChat Pay API v3 simulator: the gateway's side of the protocol, in memory."""

from knowpay.sandbox.wechatpay.app import create_app

__all__ = ["create_app"]
