"""Alipay OpenAPI (classic gateway, RSA2): channels `alipay_page`, `alipay_wap`, `alipay_qr`."""

from knowpay.channels.alipay.adapter import AlipayChannel, build_channels

__all__ = ["AlipayChannel", "build_channels"]
